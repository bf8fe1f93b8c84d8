// The evidence player: wavesurfer.js with one region per sealed span (consent, identity,
// intent, withdrawal notice). The waveform is an ARIA slider: Space plays or pauses, the
// arrow keys move 5 s, Home/End jump to the start/end. Audio comes from the desk's audio
// endpoint (session cookie, HTTP Range).
import WaveSurfer from "/static/vendor/wavesurfer.js/dist/wavesurfer.esm.js";
import RegionsPlugin from "/static/vendor/wavesurfer.js/dist/plugins/regions.esm.js";

const COLOURS = {
  consent: "rgba(0, 114, 178, 0.25)",
  identity: "rgba(230, 159, 0, 0.25)",
  intent: "rgba(0, 158, 115, 0.3)",
  withdrawal: "rgba(204, 121, 167, 0.25)",
};
const STEP = 5;

const box = document.getElementById("player");
const slider = document.getElementById("waveform");
const position = document.getElementById("position");
const playButton = document.getElementById("play");
const spans = {};
for (const li of box.querySelectorAll("li[data-region]")) {
  spans[li.dataset.region] = { start: Number(li.dataset.start), end: Number(li.dataset.end) };
}

// our own media element, already pointing at the endpoint: playback streams from it with
// HTTP Range (wavesurfer would otherwise play a blob: copy, which the CSP does not allow)
const audioUrl = new URL(box.dataset.audio, location.href).href;
const media = document.createElement("audio");
media.preload = "auto";
media.src = audioUrl;

const regions = RegionsPlugin.create();
const ws = WaveSurfer.create({
  container: slider,
  media,
  url: audioUrl,
  height: 96,
  waveColor: "#4a5568",
  progressColor: "#1a365d",
  cursorColor: "#c53030",
  cspNonce: box.dataset.nonce,
  plugins: [regions],
});
window.deskPlayer = { ws, regions, spans }; // for the end-to-end tests

let stopAt = null;

// minutes:seconds as the server writes them for the page's locale (its digits, its separator)
const twoDigits = new Intl.NumberFormat(document.documentElement.lang || "en", {
  minimumIntegerDigits: 2,
  useGrouping: false,
});
const separator = box.dataset.clockSeparator || ":";

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return twoDigits.format(Math.floor(s / 60)) + separator + twoDigits.format(s % 60);
}

function show(time) {
  const text = clock(time);
  position.textContent = text;
  slider.setAttribute("aria-valuenow", String(Math.floor(time)));
  slider.setAttribute("aria-valuetext", text);
}

ws.on("decode", () => {
  for (const [id, span] of Object.entries(spans)) {
    regions.addRegion({ id, start: span.start, end: span.end, color: COLOURS[id], drag: false, resize: false });
  }
  slider.setAttribute("aria-valuemax", String(Math.floor(ws.getDuration())));
  box.dataset.ready = "true";
});
ws.on("timeupdate", (t) => {
  show(t);
  if (stopAt !== null && t >= stopAt) {
    stopAt = null;
    ws.pause();
  }
});
ws.on("play", () => playButton.setAttribute("aria-pressed", "true"));
ws.on("pause", () => playButton.setAttribute("aria-pressed", "false"));

function seek(seconds) {
  const d = ws.getDuration() || Number(box.dataset.duration);
  ws.setTime(Math.min(Math.max(0, seconds), d));
  show(ws.getCurrentTime());
}

// A pause that comes before playback has begun (a second key press, a span's end) rejects
// play()'s promise with an AbortError: that is the listener's own pause, not a failure.
// Anything else (the browser refusing to play) stays an error.
function play() {
  ws.play().catch((error) => {
    if (error.name !== "AbortError") throw error;
  });
}

function playPause() {
  if (ws.isPlaying()) ws.pause();
  else play();
}

function playSpan(id) {
  const span = spans[id];
  if (!span) return;
  seek(span.start);
  stopAt = span.end;
  play();
}

playButton.addEventListener("click", playPause);
for (const button of box.querySelectorAll("button[data-region]")) {
  button.addEventListener("click", () => playSpan(button.dataset.region));
}
document.getElementById("speed").addEventListener("change", (e) => {
  ws.setPlaybackRate(Number(e.target.value), true);
});
slider.addEventListener("keydown", (e) => {
  const now = ws.getCurrentTime();
  const keys = {
    ArrowRight: () => seek(now + STEP),
    ArrowUp: () => seek(now + STEP),
    ArrowLeft: () => seek(now - STEP),
    ArrowDown: () => seek(now - STEP),
    Home: () => seek(0),
    End: () => seek(ws.getDuration()),
    " ": playPause,
  };
  const act = keys[e.key];
  if (act) {
    e.preventDefault();
    stopAt = null;
    act();
  }
});
