"""vault.audio: format detection, completeness checks and measured durations, on real audio
synthesised by vault.synth (no fixtures checked in)."""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vault import audio, synth
from vault.audio import AudioInfo, media_type_for_path, normalise_media_type, probe
from vault.errors import InvalidAudio

EXPECTED = {  # fmt -> (container, codec, media type, sample rate)
    "wav-pcm16": ("wav", "pcm_s16le", "audio/wav", 16000),
    "wav-ulaw": ("wav", "pcm_mulaw", "audio/wav", 8000),
    "wav-alaw": ("wav", "pcm_alaw", "audio/wav", 8000),
    "mp3": ("mp3", "mp3", "audio/mpeg", 16000),
    "ogg-opus": ("ogg", "opus", "audio/ogg", 48000),
    "flac": ("flac", "flac", "audio/flac", 16000),
}
HINTS = {
    "damaged": "the file is damaged; upload the original recording again",
    "truncated": "the recording or its upload was cut short; upload the complete file again",
}


def clip(tmp_path: Path, fmt: str, seconds: float = 1.5, seed: int = 0) -> Path:
    return synth.write_clip(tmp_path / f"clip{synth.EXTENSIONS[fmt]}", fmt, seconds, seed=seed)


def write(tmp_path: Path, data: bytes, name: str = "clip.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(
    path: Path,
    message: str,
    *,
    declared: str | None = None,
    regex: bool = False,
    hint: str | None = None,
) -> InvalidAudio:
    """probe() must refuse with exactly ``message`` (a full regex when ``regex``)."""
    with pytest.raises(InvalidAudio, match=message if regex else re.escape(message)) as exc:
        probe(path, declared_type=declared)
    if regex:
        assert re.fullmatch(message, exc.value.message), exc.value.message
    else:
        assert exc.value.message == message
    assert exc.value.hint
    if hint:
        assert exc.value.hint == HINTS[hint]
    return exc.value


def pcm_wav(samples: np.ndarray, rate: int, *, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


# --- every supported format ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_probe_measures_every_format(tmp_path, fmt):
    path = clip(tmp_path, fmt, seconds=1.5)
    info = probe(path, declared_type=synth.MEDIA_TYPES[fmt])
    container, codec, media_type, rate = EXPECTED[fmt]
    assert (info.container, info.codec, info.media_type) == (container, codec, media_type)
    assert (info.sample_rate, info.channels) == (rate, 1)
    # exact even for the lossy codecs: libsndfile trims MP3 encoder delay and padding by the
    # LAME gapless header, and Opus pre-skip and end trimming by the Ogg granule positions
    assert info.frames == int(1.5 * rate)
    assert info.duration_ms == 1500


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_type_from_the_file_extension_matches(tmp_path, fmt):
    path = clip(tmp_path, fmt)
    assert media_type_for_path(path) == synth.MEDIA_TYPES[fmt]
    assert probe(path, declared_type=media_type_for_path(path)).media_type == EXPECTED[fmt][2]


def test_duration_is_rounded_down(tmp_path):
    info = probe(clip(tmp_path, "wav-ulaw", seconds=0.0019))  # 15 samples at 8 kHz: 1.875 ms
    assert (info.frames, info.duration_ms) == (15, 1)


def test_to_dict(tmp_path):
    info = probe(clip(tmp_path, "wav-pcm16", seconds=0.25))
    assert info.to_dict() == {
        "container": "wav",
        "codec": "pcm_s16le",
        "media_type": "audio/wav",
        "sample_rate": 16000,
        "channels": 1,
        "frames": 4000,
        "duration_ms": 250,
    }
    assert isinstance(info, AudioInfo)


@pytest.mark.parametrize(
    ("subtype", "codec"),
    [
        ("PCM_U8", "pcm_u8"),
        ("PCM_24", "pcm_s24le"),
        ("PCM_32", "pcm_s32le"),
        ("FLOAT", "pcm_f32le"),
    ],
)
def test_other_wav_encodings_stereo(tmp_path, subtype, codec):
    samples = synth.speech(0.5, 16000)
    path = write(tmp_path, pcm_wav(np.stack([samples, samples], 1), 16000, subtype=subtype))
    info = probe(path)
    assert (info.codec, info.channels, info.frames, info.duration_ms) == (codec, 2, 8000, 500)


@pytest.mark.parametrize(("subtype", "codec"), [("PCM_16", "pcm_s16le"), ("ULAW", "pcm_mulaw")])
def test_wave_format_extensible_is_accepted(tmp_path, subtype, codec):
    data = pcm_wav(synth.speech(0.5, 8000), 8000, fmt="WAVEX", subtype=subtype)
    assert struct.unpack_from("<H", data, 20)[0] == 0xFFFE
    info = probe(write(tmp_path, data, "clip.wav"), declared_type="audio/wav")
    assert (info.codec, info.frames) == (codec, 4000)


def test_ogg_vorbis_is_accepted(tmp_path):
    data = pcm_wav(synth.speech(1.0, 16000), 16000, fmt="OGG", subtype="VORBIS")
    info = probe(write(tmp_path, data, "clip.ogg"), declared_type="audio/ogg")
    assert (info.codec, info.frames, info.duration_ms) == ("vorbis", 16000, 1000)


def test_mp3_tags_are_skipped(tmp_path):
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + b"\0" * 20
    id3v1 = b"TAG" + b"\0" * 125
    data = id3v2 + synth.synthesize("mp3", 1.0) + id3v1
    info = probe(write(tmp_path, data, "clip.mp3"), declared_type="audio/mp3")
    assert (info.container, info.frames) == ("mp3", 16000)


def test_mp3_without_xing_header_counts_frames(tmp_path):
    data = synth.synthesize("mp3", 1.0)
    first_frame = audio._mp3_frame(data[:4]).length
    path = write(tmp_path, data[first_frame:], "clip.mp3")  # drop the Xing/LAME info frame
    info = probe(path)
    # no gapless info: the length is every frame's 576 samples, encoder delay and padding
    # included, as any decoder would play it
    assert info.frames % 576 == 0
    assert 16000 < info.frames < 16000 + 3 * 576


def test_flac_of_unknown_length_is_measured(tmp_path):
    data = bytearray(synth.synthesize("flac", 1.0))
    fields = int.from_bytes(data[18:26], "big") & ~(2**36 - 1)  # STREAMINFO total samples = 0
    data[18:26] = fields.to_bytes(8, "big")
    assert probe(write(tmp_path, bytes(data), "clip.flac")).frames == 16000


def test_flac_behind_an_id3_tag(tmp_path):
    data = b"ID3\x03\x00\x00" + bytes([0, 0, 0, 10]) + b"\0" * 10 + synth.synthesize("flac", 0.5)
    assert probe(write(tmp_path, data, "clip.flac")).container == "flac"


# --- declared types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "canonical"),
    [
        ("audio/wav", "audio/wav"),
        ("audio/x-wav", "audio/wav"),
        ("audio/wave", "audio/wav"),
        ("audio/vnd.wave", "audio/wav"),
        ("WAV", "audio/wav"),
        ("audio/mpeg", "audio/mpeg"),
        ("audio/mp3", "audio/mpeg"),
        ("mp3", "audio/mpeg"),
        ("audio/ogg", "audio/ogg"),
        ("audio/opus", "audio/ogg"),
        ("Audio/Ogg; codecs=opus", "audio/ogg"),
        ("opus", "audio/ogg"),
        ("ogg", "audio/ogg"),
        ("audio/flac", "audio/flac"),
        ("audio/x-flac", "audio/flac"),
        (" flac ", "audio/flac"),
    ],
)
def test_normalise_media_type(declared, canonical):
    assert normalise_media_type(declared) == canonical


def test_unsupported_declared_type(tmp_path):
    with pytest.raises(InvalidAudio) as exc:
        normalise_media_type("video/mp4; codecs=avc1")
    assert exc.value.message == "the declared media type 'video/mp4' is not a supported audio type"
    refused(
        clip(tmp_path, "wav-pcm16"),
        "the declared media type 'audio/aac' is not a supported audio type",
        declared="audio/aac",
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.wav", "audio/wav"),
        ("a.WAV", "audio/wav"),
        ("a.mp3", "audio/mpeg"),
        ("a.ogg", "audio/ogg"),
        ("a.opus", "audio/ogg"),
        ("a.flac", "audio/flac"),
        ("a.m4a", None),
        ("noext", None),
    ],
)
def test_media_type_for_path(name, expected):
    assert media_type_for_path(Path("/x") / name) == expected


@pytest.mark.parametrize(
    ("fmt", "declared", "message"),
    [
        (
            "wav-pcm16",
            "audio/flac",
            "the clip was declared as audio/flac but its content is WAV (audio/wav)",
        ),
        (
            "flac",
            "audio/x-wav",
            "the clip was declared as audio/wav but its content is FLAC (audio/flac)",
        ),
        (
            "mp3",
            "audio/opus",
            "the clip was declared as audio/ogg but its content is MP3 (audio/mpeg)",
        ),
        (
            "ogg-opus",
            "mp3",
            "the clip was declared as audio/mpeg but its content is Ogg (audio/ogg)",
        ),
    ],
)
def test_declared_type_must_match_content(tmp_path, fmt, declared, message):
    err = refused(clip(tmp_path, fmt), message, declared=declared)
    assert err.hint.startswith("declare it as ")


# --- not audio --------------------------------------------------------------------------------

NOT_AUDIO = "the clip is not audio in a supported format (no WAV, MP3, Ogg or FLAC signature found)"


def test_empty_file(tmp_path):
    refused(write(tmp_path, b"", "clip.wav"), "the clip is empty (0 bytes)", declared="audio/wav")


def test_random_bytes(tmp_path):
    noise = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert noise[0] != 0xFF  # so it cannot look like an MPEG frame sync
    refused(write(tmp_path, noise), NOT_AUDIO)


def test_text_file_named_wav(tmp_path):
    path = write(tmp_path, b"order ORD-2026-000123 confirmed\n", "clip.wav")
    refused(path, NOT_AUDIO, declared=media_type_for_path(path))


def test_other_audio_formats_are_not_accepted(tmp_path):
    aiff = pcm_wav(synth.speech(0.2, 8000), 8000, fmt="AIFF")
    refused(write(tmp_path, aiff, "clip.aiff"), NOT_AUDIO)


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.wav", "the clip cannot be read: No such file or directory")


# --- WAV ----------------------------------------------------------------------------------------


def test_wav_truncated(tmp_path):
    data = synth.synthesize("wav-pcm16", 1.0)  # 16000 frames: a 32000-byte data chunk
    refused(
        write(tmp_path, data[:-100]),
        "the WAV clip is truncated: its 'data' chunk declares 32000 bytes but only 31900 "
        "are present (100 bytes missing)",
        hint="truncated",
    )


def test_wav_truncated_after_the_data_chunk(tmp_path):
    data = synth.synthesize("wav-ulaw", 0.5)
    info_chunk = b"LIST" + struct.pack("<I", 12) + b"INFOISFT\0\0\0\0"
    full = data[:4] + struct.pack("<I", len(data) - 8 + len(info_chunk)) + data[8:] + info_chunk
    assert probe(write(tmp_path, full)).frames == 4000
    refused(
        write(tmp_path, full[:-5]),
        f"the WAV clip is truncated: its RIFF header declares {len(full)} bytes but the "
        f"file has {len(full) - 5} (5 bytes missing)",
        hint="truncated",
    )


def test_wav_with_zero_frames(tmp_path):
    data = pcm_wav(np.zeros((0, 1)), 8000)
    assert data[36:44] == b"data\0\0\0\0"
    refused(write(tmp_path, data), "the clip contains no audio: the WAV data chunk is empty")


def test_wav_without_data_chunk(tmp_path):
    data = synth.synthesize("wav-pcm16", 0.1)
    header = b"RIFF" + struct.pack("<I", 28) + data[8:36]  # RIFF, WAVE, fmt chunk only
    refused(write(tmp_path, header), "the WAV clip has no data chunk", hint="damaged")


def test_wav_without_fmt_chunk(tmp_path):
    data = b"RIFF" + struct.pack("<I", 16) + b"WAVEdata" + struct.pack("<I", 4) + b"\0" * 4
    refused(write(tmp_path, data), "the WAV clip has no fmt chunk", hint="damaged")


def test_wav_adpcm_is_unsupported(tmp_path):
    data = pcm_wav(synth.speech(0.5, 8000), 8000, subtype="MS_ADPCM")
    err = refused(
        write(tmp_path, data, "clip.wav"),
        "the WAV clip uses an unsupported encoding: format tag 0x0002 (MS ADPCM)",
    )
    assert "PCM 8/16/24/32-bit, IEEE float, G.711 µ-law and A-law" in err.hint


def test_wav_odd_bit_depth_is_unsupported(tmp_path):
    data = bytearray(synth.synthesize("wav-pcm16", 0.1))
    data[34:36] = struct.pack("<H", 12)  # bits per sample
    refused(write(tmp_path, bytes(data)), "the WAV clip uses an unsupported encoding: 12-bit PCM")


def test_wav_extensible_with_unknown_subformat(tmp_path):
    data = bytearray(pcm_wav(synth.speech(0.1, 8000), 8000, fmt="WAVEX"))
    data[20 + 24 + 4] ^= 0xFF  # inside the subformat GUID, after the format tag
    refused(
        write(tmp_path, bytes(data)),
        "the WAV clip uses an unsupported encoding: "
        "WAVE_FORMAT_EXTENSIBLE with an unknown subformat",
    )


def test_wav_inconsistent_fmt(tmp_path):
    data = bytearray(synth.synthesize("wav-pcm16", 0.1))
    data[32:34] = struct.pack("<H", 3)  # block align
    refused(
        write(tmp_path, bytes(data)),
        "the WAV fmt chunk is inconsistent: block align 3 for 1 channel(s) of 16-bit "
        "samples at 16000 Hz",
        hint="damaged",
    )


def test_large_wav_is_probed_from_its_header(tmp_path, monkeypatch):
    path = synth.write_large_wav(tmp_path / "big.wav", 50_000_000)
    assert path.stat().st_size == 50_000_000
    read = []

    class CountingFile(io.FileIO):  # counts what is really read from disk, under any buffering
        def readinto(self, buffer):
            n = super().readinto(buffer)
            read.append(n)
            return n

    def counting_open(file, mode="r", *args, **kwargs):
        assert mode == "rb"
        return io.BufferedReader(CountingFile(file, "rb"))

    monkeypatch.setattr(audio, "open", counting_open, raising=False)
    info = probe(path, declared_type="audio/wav")
    assert (info.codec, info.sample_rate, info.frames) == ("pcm_s16le", 8000, 24_999_978)
    assert info.duration_ms == 3_124_997
    assert 0 < sum(read) <= 64 * 1024  # a few buffered header reads, never the samples


# --- FLAC ---------------------------------------------------------------------------------------


def test_flac_truncated(tmp_path):
    data = synth.synthesize("flac", 2.0)
    refused(
        write(tmp_path, data[:-100]),
        r"the FLAC clip is damaged or truncated: decoding failed after \d+ samples "
        r"\(flac decoder lost sync\)",
        regex=True,
        hint="damaged",
    )


def test_flac_shorter_than_streaminfo_says(tmp_path):
    data = bytearray(synth.synthesize("flac", 1.0))
    fields = int.from_bytes(data[18:26], "big")
    data[18:26] = (fields + 4096).to_bytes(8, "big")  # STREAMINFO total samples += 4096
    refused(
        write(tmp_path, bytes(data)),
        "the FLAC clip is truncated: decoding gave 16000 samples where STREAMINFO promises 20096",
        hint="truncated",
    )


def test_flac_header_only(tmp_path):
    refused(
        write(tmp_path, b"fLaC\0\0\0\x22"),
        "the FLAC clip is truncated: it ends inside its STREAMINFO header (34 bytes missing)",
    )


# --- Ogg ----------------------------------------------------------------------------------------


def ogg_pages(data: bytes) -> list[int]:
    """Offsets of the Ogg pages in ``data``."""
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        nsegs = data[pos + 26]
        pos += 27 + nsegs + sum(data[pos + 27 : pos + 27 + nsegs])
    return offsets


#: Opus input rate (the OpusHead's) -> the rate libsndfile decodes, and the vault measures, at
OPUS_DECODE_RATES = {
    8000: 8000,
    12000: 12000,
    16000: 16000,
    22050: 24000,
    24000: 24000,
    44100: 48000,
    48000: 48000,
}


def opus(seconds: float, input_rate: int = 48000) -> bytes:
    return synth.synthesize("ogg-opus", seconds, sample_rate=input_rate)


def opus_input_rate(data: bytes) -> int:
    assert data[28:36] == b"OpusHead"
    return struct.unpack_from("<I", data, 28 + 12)[0]


@pytest.mark.parametrize("input_rate", sorted(OPUS_DECODE_RATES))
def test_opus_at_every_input_rate(tmp_path, input_rate):
    data = opus(1.2345, input_rate)
    assert opus_input_rate(data) == input_rate
    info = probe(write(tmp_path, data, "clip.opus"), declared_type="audio/opus")
    rate = OPUS_DECODE_RATES[input_rate]
    assert (info.container, info.codec, info.sample_rate, info.channels) == ("ogg", "opus", rate, 1)
    assert abs(info.frames - 1.2345 * rate) <= 1  # within one sample of the encoded length
    assert info.duration_ms == 1234


@pytest.mark.parametrize("input_rate", [48000, 22050, 8000])
def test_ogg_truncated_mid_page(tmp_path, input_rate):
    data = opus(2.0, input_rate)
    cut = len(data) // 2
    page = max(p for p in ogg_pages(data) if p < cut)
    refused(
        write(tmp_path, data[:cut]),
        rf"the Ogg clip is truncated: its page at byte {page} is cut short "
        r"\(\d+ bytes missing\)",
        regex=True,
        hint="truncated",
    )


@pytest.mark.parametrize("input_rate", [48000, 22050, 8000])
def test_ogg_truncated_at_a_page_boundary(tmp_path, input_rate):
    data = opus(2.0, input_rate)
    last = ogg_pages(data)[-1]
    assert data[last + 5] & 0x04  # the end-of-stream page
    refused(
        write(tmp_path, data[:last]),
        "the Ogg clip is truncated: its last page does not end the stream",
        hint="truncated",
    )


@pytest.mark.parametrize("input_rate", sorted(OPUS_DECODE_RATES))
def test_ogg_damaged_inside_a_page(tmp_path, input_rate):
    data = bytearray(opus(4.0, input_rate))  # long enough for audio pages on either side
    pages = ogg_pages(bytes(data))
    middle = pages[len(pages) // 2]
    assert pages.index(middle) > 2  # not a header page, nor the first audio page
    body = middle + 27 + data[middle + 26]
    data[body + 60 : body + 120] = b"\x55" * 60  # the body: only the page CRC notices
    refused(
        write(tmp_path, bytes(data)),
        r"the Ogg clip is damaged: decoding gave \d+ samples where its last page "
        rf"promises {4 * OPUS_DECODE_RATES[input_rate]}",
        regex=True,
        hint="damaged",
    )


@pytest.mark.parametrize("input_rate", [48000, 22050, 8000])
def test_ogg_last_page_promising_more_than_the_stream_holds(tmp_path, input_rate):
    data = bytearray(opus(2.0, input_rate))
    last = ogg_pages(bytes(data))[-1]
    granule = struct.unpack_from("<q", data, last + 6)[0]
    struct.pack_into("<q", data, last + 6, granule + 4800)  # 100 ms more, in 48 kHz units
    data[last + 22 : last + 26] = struct.pack("<I", 0)
    data[last + 22 : last + 26] = struct.pack("<I", synth._ogg_crc(data[last:]))  # a valid page
    refused(
        write(tmp_path, bytes(data)),
        r"the Ogg clip is damaged: decoding gave \d+ samples where its last page "
        rf"promises {int(2.1 * OPUS_DECODE_RATES[input_rate])}",
        regex=True,
        hint="damaged",
    )


def test_ogg_junk_after_the_stream(tmp_path):
    data = synth.synthesize("ogg-opus", 0.5) + b"\0" * 10
    refused(
        write(tmp_path, data),
        "the Ogg clip is damaged: 10 bytes of junk after the end of the stream",
    )


def test_ogg_other_codecs_are_unsupported(tmp_path):
    data = bytearray(synth.synthesize("ogg-opus", 0.5))
    assert data[28:36] == b"OpusHead"
    data[28:36] = b"Speex   "
    refused(
        write(tmp_path, bytes(data)),
        "the Ogg clip holds Speex audio; only Opus and Vorbis are supported in Ogg",
    )


# --- MP3 ----------------------------------------------------------------------------------------


def mp3_frames(data: bytes) -> list[int]:
    """Offsets of the MPEG frames in ``data`` (no tags)."""
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += audio._mp3_frame(data[pos : pos + 4]).length
    return offsets


def test_mp3_truncated_mid_frame(tmp_path):
    data = synth.synthesize("mp3", 2.0)
    last = mp3_frames(data)[-1]
    cut = len(data) - (len(data) - last) // 2
    refused(
        write(tmp_path, data[:cut]),
        f"the MP3 clip is truncated: its last frame is cut short ({len(data) - cut} bytes missing)",
        hint="truncated",
    )


def test_mp3_truncated_at_a_frame_boundary(tmp_path):
    data = synth.synthesize("mp3", 2.0)
    frames = mp3_frames(data)
    n = len(frames) - 1  # audio frames: the first one holds the Xing/LAME header
    refused(
        write(tmp_path, data[: frames[-1]]),
        f"the MP3 clip is truncated: its header announces {n} frames but {n - 1} are present",
        hint="truncated",
    )


def test_mp3_damaged_frame_header(tmp_path):
    data = bytearray(synth.synthesize("mp3", 2.0))
    frame = mp3_frames(bytes(data))[10]
    data[frame : frame + 4] = b"\x55" * 4
    refused(
        write(tmp_path, bytes(data)),
        f"the MP3 clip is damaged: no valid MPEG audio frame header at byte {frame}",
        hint="damaged",
    )


def test_mpeg_layer_ii_is_not_mp3(tmp_path):
    data = bytearray(synth.synthesize("mp3", 0.5))
    data[1] = (data[1] & ~0x06) | 0x04  # layer bits: Layer II
    refused(write(tmp_path, bytes(data)), "the clip is MPEG audio Layer II, not MP3 (Layer III)")


# --- synth ------------------------------------------------------------------------------------


def test_synth_is_deterministic_per_seed():
    for fmt in ("wav-pcm16", "ogg-opus"):
        assert synth.synthesize(fmt, 0.5, seed=1) == synth.synthesize(fmt, 0.5, seed=1)
        assert synth.synthesize(fmt, 0.5, seed=1) != synth.synthesize(fmt, 0.5, seed=2)


def test_synth_sounds_like_speech():
    samples = synth.speech(4.0, 8000, seed=3)
    assert samples.dtype == np.float32 and np.abs(samples).max() <= 1.0
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)  # 20 ms frames
    energy = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    # syllables and pauses: about half the frames carry voice, most others are near-silent
    assert 0.35 < (energy > 0.02).mean() < 0.8
    assert (energy < 0.01).mean() > 0.15


def test_synth_opus_input_rates():
    # a rate libopus takes is encoded as is; another is resampled and named in the OpusHead
    for rate in (*synth.OPUS_RATES, 22050, 44100):
        assert opus_input_rate(opus(0.2, rate)) == rate
    assert opus(0.2, 22050) == opus(0.2, 22050)
    assert opus(0.2, 22050) != opus(0.2, 24000)


def test_synth_rejects_unknown_formats():
    with pytest.raises(ValueError, match="unknown format 'aac'"):
        synth.synthesize("aac", 1.0)
    assert set(synth.MEDIA_TYPES) == set(synth.EXTENSIONS) == set(synth.FORMATS)
