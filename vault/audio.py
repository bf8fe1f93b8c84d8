"""Audio format detection and duration measurement for evidence clips (pure: reads one file).

A clip is only evidence if it is real, complete audio, so :func:`probe` checks the content,
never the name or the declared type alone:

- WAV is measured from its RIFF chunk structure alone (a few seeks and small reads, no
  decoding), so a 1 GiB WAV probes in bounded memory and constant time.
- FLAC, MP3 and Ogg are decoded in full with libsndfile, block by block, so damage anywhere
  in the stream is caught. Their container structure (FLAC STREAMINFO, MPEG frame headers,
  Ogg pages) is walked here too, because libsndfile stops quietly at many truncations and
  reports lengths from headers that a cut file no longer matches.

Every refusal is an :class:`~vault.errors.InvalidAudio` naming the problem, with a hint.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, BinaryIO

from vault.errors import InvalidAudio

if TYPE_CHECKING:
    import soundfile as sf

_CANONICAL = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}
_LABELS = {"wav": "WAV", "mp3": "MP3", "ogg": "Ogg", "flac": "FLAC"}
_ALIASES = {
    "audio/wav": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "wav": "audio/wav",
    "audio/mpeg": "audio/mpeg",
    "audio/mp3": "audio/mpeg",
    "mp3": "audio/mpeg",
    "audio/ogg": "audio/ogg",
    "audio/opus": "audio/ogg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "audio/flac": "audio/flac",
    "audio/x-flac": "audio/flac",
    "flac": "audio/flac",
}
_EXTENSIONS = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
}

_SUPPORTED = "WAV (PCM, IEEE float, G.711 µ-law or A-law), MP3, Ogg Opus/Vorbis or FLAC"
_HINT_FORMAT = f"upload the recording as {_SUPPORTED}"
_HINT_DAMAGED = "the file is damaged; upload the original recording again"
_HINT_TRUNCATED = "the recording or its upload was cut short; upload the complete file again"
_HINT_EMPTY = "the recording holds no sound; record the order segment again"

_DECODE_BLOCK = 65536  # frames per libsndfile read: bounded memory for any clip length


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` measured about a clip."""

    container: str  # "wav" | "mp3" | "ogg" | "flac"
    codec: str  # e.g. "pcm_s16le", "pcm_mulaw", "mp3", "opus", "vorbis", "flac"
    media_type: str  # canonical: "audio/wav" | "audio/mpeg" | "audio/ogg" | "audio/flac"
    sample_rate: int  # of the decoded audio, which ``frames`` counts (Opus: see _probe_ogg)
    channels: int
    frames: int
    duration_ms: int  # measured, rounded down

    def to_dict(self) -> dict:
        return asdict(self)


def normalise_media_type(declared: str) -> str:
    """The canonical media type for a declared one (aliases, bare names, any parameters)."""
    base = declared.split(";", 1)[0].strip().lower()
    try:
        return _ALIASES[base]
    except KeyError:
        shown = base if len(base) <= 60 else base[:57] + "..."
        raise InvalidAudio(
            f"the declared media type {shown!r} is not a supported audio type",
            hint="declare one of audio/wav, audio/mpeg, audio/ogg or audio/flac",
        ) from None


def media_type_for_path(path: str | os.PathLike) -> str | None:
    """The canonical media type implied by the file extension, or None if it implies none."""
    return _EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())


def probe(path: str | os.PathLike, *, declared_type: str | None = None) -> AudioInfo:
    """Detect the format of the clip at ``path``, check it is complete audio, measure it.

    ``declared_type`` (a media type or bare name, see :func:`normalise_media_type`) must
    agree with the content when given; None or "" means undeclared.
    """
    expected = normalise_media_type(declared_type) if declared_type else None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InvalidAudio(
                    "the clip is empty (0 bytes)",
                    hint="upload the recorded order segment, not an empty file",
                )
            container, start = _sniff(f)
            actual = _CANONICAL[container]
            if expected is not None and expected != actual:
                raise InvalidAudio(
                    f"the clip was declared as {expected} but its content is "
                    f"{_LABELS[container]} ({actual})",
                    hint=f"declare it as {actual}, or upload the intended file",
                )
            if container == "wav":
                return _probe_wav(f, size)
            if container == "flac":
                return _probe_flac(f, path, start)
            if container == "ogg":
                return _probe_ogg(f, path, size)
            return _probe_mp3(f, path, size, start)
    except OSError as exc:
        raise InvalidAudio(
            f"the clip cannot be read: {exc.strerror or type(exc).__name__}",
            hint="check that the file exists and is readable",
        ) from None


# --- detection ---------------------------------------------------------------------------


def _sniff(f: BinaryIO) -> tuple[str, int]:
    """(container, offset where its stream starts) from the magic bytes."""
    head = f.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav", 0
    if head[:4] == b"OggS":
        return "ogg", 0
    start = _skip_id3v2(f)
    f.seek(start)
    magic = f.read(4)
    if magic == b"fLaC":  # some taggers put an ID3v2 tag in front of FLAC too
        return "flac", start
    if _mpeg_sync(magic):
        return "mp3", start
    raise InvalidAudio(
        "the clip is not audio in a supported format (no WAV, MP3, Ogg or FLAC signature found)",
        hint=_HINT_FORMAT,
    )


def _skip_id3v2(f: BinaryIO) -> int:
    """Offset just past any ID3v2 tags at the start of the file."""
    pos = 0
    while True:
        f.seek(pos)
        tag = f.read(10)
        if len(tag) < 10 or tag[:3] != b"ID3":
            return pos
        size = tag[6] << 21 | tag[7] << 14 | tag[8] << 7 | tag[9]  # "syncsafe": 7 bits a byte
        pos += 10 + size + (10 if tag[5] & 0x10 else 0)  # flag 0x10: a footer follows


# --- WAV: header only ----------------------------------------------------------------------

#: (format tag, bits per sample) -> codec
_WAV_CODECS = {
    (1, 8): "pcm_u8",
    (1, 16): "pcm_s16le",
    (1, 24): "pcm_s24le",
    (1, 32): "pcm_s32le",
    (3, 32): "pcm_f32le",
    (3, 64): "pcm_f64le",
    (6, 8): "pcm_alaw",
    (7, 8): "pcm_mulaw",
}
_WAV_TAG_NAMES = {
    0x0001: "PCM",
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "µ-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG",
    0x0055: "MPEG Layer III",
}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: the KSDATAFORMAT_SUBTYPE_* GUIDs are the format tag followed by these 14 bytes
_KSDATAFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_HINT_WAV_CODEC = (
    "supported WAV encodings are PCM 8/16/24/32-bit, IEEE float, G.711 µ-law and A-law; "
    "convert the clip to one of them"
)


def _probe_wav(f: BinaryIO, size: int) -> AudioInfo:
    f.seek(4)
    riff_end = 8 + struct.unpack("<I", f.read(4))[0]
    fmt: tuple[str, int, int, int] | None = None
    data_size: int | None = None
    pos = 12
    # walk the chunks until both fmt and data are found; everything else is skipped by seeking
    while pos + 8 <= min(size, riff_end) and (fmt is None or data_size is None):
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        body = pos + 8
        if body + chunk_size > size:
            name = chunk_id.decode("ascii", "replace").strip()
            raise _truncated(
                "WAV",
                f"its {name!r} chunk declares {chunk_size} bytes but only "
                f"{size - body} are present",
                body + chunk_size - size,
            )
        if chunk_id == b"fmt ":
            f.seek(body)
            fmt = _wav_format(f.read(min(chunk_size, 64)))
        elif chunk_id == b"data":
            data_size = chunk_size
        pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    if fmt is None or data_size is None:
        missing = "fmt" if fmt is None else "data"
        raise InvalidAudio(f"the WAV clip has no {missing} chunk", hint=_HINT_DAMAGED)
    if riff_end > size:
        raise _truncated(
            "WAV",
            f"its RIFF header declares {riff_end} bytes but the file has {size}",
            riff_end - size,
        )
    codec, channels, rate, block_align = fmt
    frames = data_size // block_align
    if frames == 0:
        raise InvalidAudio(
            "the clip contains no audio: the WAV data chunk is empty", hint=_HINT_EMPTY
        )
    return _info("wav", codec, rate, channels, frames)


def _wav_format(raw: bytes) -> tuple[str, int, int, int]:
    """(codec, channels, sample rate, block align) from a fmt chunk body."""
    if len(raw) < 16:
        raise InvalidAudio(
            f"the WAV fmt chunk is too short ({len(raw)} bytes, at least 16 needed)",
            hint=_HINT_DAMAGED,
        )
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", raw)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(raw) < 40 or raw[26:40] != _KSDATAFORMAT_TAIL:
            raise InvalidAudio(
                "the WAV clip uses an unsupported encoding: "
                "WAVE_FORMAT_EXTENSIBLE with an unknown subformat",
                hint=_HINT_WAV_CODEC,
            )
        tag = struct.unpack_from("<H", raw, 24)[0]
    codec = _WAV_CODECS.get((tag, bits))
    if codec is None:
        if tag in (1, 3, 6, 7):
            what = f"{bits}-bit {_WAV_TAG_NAMES[tag]}"
        else:
            what = f"format tag 0x{tag:04X} ({_WAV_TAG_NAMES.get(tag, 'unknown')})"
        raise InvalidAudio(
            f"the WAV clip uses an unsupported encoding: {what}", hint=_HINT_WAV_CODEC
        )
    if channels == 0 or rate == 0 or block_align != channels * bits // 8:
        raise InvalidAudio(
            f"the WAV fmt chunk is inconsistent: block align {block_align} for "
            f"{channels} channel(s) of {bits}-bit samples at {rate} Hz",
            hint=_HINT_DAMAGED,
        )
    return codec, channels, rate, block_align


# --- FLAC ------------------------------------------------------------------------------------


def _probe_flac(f: BinaryIO, path: str | os.PathLike, start: int) -> AudioInfo:
    f.seek(start + 4)
    block = f.read(4 + 34)  # metadata block header, then STREAMINFO, which must come first
    if len(block) < 38:
        raise _truncated("FLAC", "it ends inside its STREAMINFO header", 38 - len(block))
    if block[0] & 0x7F != 0 or int.from_bytes(block[1:4], "big") != 34:
        raise InvalidAudio("the FLAC clip has no valid STREAMINFO block", hint=_HINT_DAMAGED)
    total = int.from_bytes(block[14:22], "big") & (2**36 - 1)  # 0 = unknown to the encoder
    dec = _decode(path, "flac")
    if total and dec.frames != total:
        raise _truncated(
            "FLAC",
            f"decoding gave {dec.frames} samples where STREAMINFO promises {total}",
            None,
        )
    return _info("flac", "flac", dec.sample_rate, dec.channels, dec.frames)


# --- Ogg -------------------------------------------------------------------------------------

_OGG_EOS = 0x04
_OPUS_GRANULE_RATE = 48000  # RFC 7845 §4: Opus granule positions count 48 kHz samples


@dataclass(frozen=True)
class _OggStream:
    codec: str
    granule_rate: int | None  # samples per second the granule positions count; None: the
    # codec's own sample rate (Vorbis)
    pre_skip: int  # Opus: granule samples to drop at the start (0 for Vorbis)
    last_granule: int  # the end position of the last complete packet

    def frames_at(self, rate: int) -> tuple[int, int]:
        """The (fewest, most) frames a decoder at ``rate`` Hz may give for the whole stream.

        Opus decodes at 8, 12, 16, 24 or 48 kHz whatever rate the OpusHead names (the input
        rate is informational only), so the 48 kHz granule span is scaled to the decode rate;
        a fractional sample may go either way.
        """
        span = self.last_granule - self.pre_skip
        scale = self.granule_rate or rate
        return span * rate // scale, -(-span * rate // scale)


def _probe_ogg(f: BinaryIO, path: str | os.PathLike, size: int) -> AudioInfo:
    """Walk the pages, decode, and require the decode to reach the last page's granule.

    Opus is measured at libsndfile's decode rate, not at the OpusHead's input rate: the
    lowest Opus rate (8, 12, 16, 24 or 48 kHz) at or above the input rate, so 22.05 kHz
    input decodes at 24 kHz and 44.1 kHz at 48 kHz. ``frames`` are then real decoded samples.
    """
    stream = _walk_ogg_pages(f, size)
    dec = _decode(path, "ogg")
    fewest, most = stream.frames_at(dec.sample_rate)
    if not fewest <= dec.frames <= most:
        # libogg skips pages whose CRC fails: the decode comes up short of the last page
        promised = str(fewest) if fewest == most else f"{fewest} or {most}"
        raise InvalidAudio(
            f"the Ogg clip is damaged: decoding gave {dec.frames} samples where its "
            f"last page promises {promised}",
            hint=_HINT_DAMAGED,
        )
    return _info("ogg", stream.codec, dec.sample_rate, dec.channels, dec.frames)


def _walk_ogg_pages(f: BinaryIO, size: int) -> _OggStream:
    """Check the page structure end to end by reading page headers and seeking over bodies."""
    pos, flags, codec, pre_skip, granule = 0, 0, "", 0, 0
    while pos < size:
        f.seek(pos)
        head = f.read(27)
        if flags & _OGG_EOS and head[:4] != b"OggS":  # a new (chained) stream may follow
            raise InvalidAudio(
                f"the Ogg clip is damaged: {_n_bytes(size - pos)} of junk after the end "
                "of the stream",
                hint=_HINT_DAMAGED,
            )
        if len(head) < 27:
            raise _truncated("Ogg", f"its page at byte {pos} is cut short", None)
        if head[:4] != b"OggS" or head[4] != 0:
            raise InvalidAudio(
                f"the Ogg clip is damaged: no valid Ogg page at byte {pos}", hint=_HINT_DAMAGED
            )
        segments = f.read(head[26])  # the lacing values: the body length is their sum
        end = pos + 27 + head[26] + sum(segments)
        if len(segments) < head[26] or end > size:
            missing = end - size if len(segments) == head[26] else None
            raise _truncated("Ogg", f"its page at byte {pos} is cut short", missing)
        flags = head[5]
        if pos == 0:
            codec, pre_skip = _ogg_codec(f.read(19))
        page_granule = struct.unpack_from("<q", head, 6)[0]
        if page_granule != -1:  # -1: no packet ends on this page
            granule = page_granule
        pos = end
    if not flags & _OGG_EOS:
        raise _truncated("Ogg", "its last page does not end the stream", None)
    granule_rate = _OPUS_GRANULE_RATE if codec == "opus" else None
    return _OggStream(codec, granule_rate, pre_skip, granule)


def _ogg_codec(first_packet: bytes) -> tuple[str, int]:
    """(codec, pre-skip) from the identification header in the first page."""
    if first_packet.startswith(b"OpusHead") and len(first_packet) >= 12:
        return "opus", struct.unpack_from("<H", first_packet, 10)[0]
    if first_packet.startswith(b"\x01vorbis"):
        return "vorbis", 0
    if first_packet.startswith(b"\x7fFLAC"):
        other = "FLAC"
    elif first_packet.startswith(b"Speex"):
        other = "Speex"
    else:
        other = "an unknown codec's"
    raise InvalidAudio(
        f"the Ogg clip holds {other} audio; only Opus and Vorbis are supported in Ogg",
        hint=_HINT_FORMAT,
    )


# --- MP3 -------------------------------------------------------------------------------------

#: MPEG version bits -> sample rates by index (0b01 is reserved)
_MPEG_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}
#: Layer III bit rates (kbit/s) by index, for MPEG-1 and for MPEG-2/2.5
_L3_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_L3_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_LAYER_NAMES = {0b11: "Layer I", 0b10: "Layer II", 0b01: "Layer III"}


@dataclass(frozen=True)
class _MpegFrame:
    version: int  # the two version bits
    sample_rate: int
    length: int  # bytes, header included
    samples: int  # per frame: 1152 (MPEG-1) or 576 (MPEG-2/2.5)
    mono: bool


def _mpeg_sync(h: bytes) -> bool:
    """Is this a plausible MPEG audio frame header (any layer)?"""
    return (
        len(h) == 4
        and h[0] == 0xFF
        and h[1] & 0xE0 == 0xE0
        and (h[1] >> 3) & 3 != 0b01
        and (h[1] >> 1) & 3 != 0
        and h[2] >> 4 not in (0, 15)
        and (h[2] >> 2) & 3 != 3
    )


def _mp3_frame(h: bytes) -> _MpegFrame | None:
    """A Layer III frame header, or None if ``h`` is not one (free-format bit rate included)."""
    if not _mpeg_sync(h) or (h[1] >> 1) & 3 != 0b01:
        return None
    version = (h[1] >> 3) & 3
    rate = _MPEG_RATES[version][(h[2] >> 2) & 3]
    kbps = (_L3_KBPS_V1 if version == 0b11 else _L3_KBPS_V2)[h[2] >> 4]
    per_frame = 1152 if version == 0b11 else 576
    length = per_frame // 8 * kbps * 1000 // rate + ((h[2] >> 1) & 1)
    return _MpegFrame(version, rate, length, per_frame, h[3] >> 6 == 3)


def _probe_mp3(f: BinaryIO, path: str | os.PathLike, size: int, start: int) -> AudioInfo:
    f.seek(start)
    layer = (f.read(4)[1] >> 1) & 3
    if layer != 0b01:
        raise InvalidAudio(
            f"the clip is MPEG audio {_LAYER_NAMES[layer]}, not MP3 (Layer III)",
            hint=_HINT_FORMAT,
        )
    first, frames, announced = _walk_mp3_frames(f, start, _mp3_audio_end(f, size))
    dec = _decode(path, "mp3")
    if announced is not None:
        # with a Xing/Info/VBRI header libsndfile knows the exact (gapless) length
        if dec.frames != dec.header_frames:
            raise InvalidAudio(
                f"the MP3 clip is damaged: decoding gave {dec.frames} samples where its "
                f"header promises {dec.header_frames}",
                hint=_HINT_DAMAGED,
            )
        samples = dec.frames
    else:
        # without one, libsndfile's length is a guess from the first frame's bit rate and it
        # stops decoding there; every frame decodes to a fixed sample count, so count frames
        samples = frames * first.samples
    return _info("mp3", "mp3", first.sample_rate, dec.channels, samples)


def _mp3_audio_end(f: BinaryIO, size: int) -> int:
    """Offset where the MPEG frames end: before a trailing ID3v1 tag and/or APEv2 tag."""
    end = size
    if end >= 128:
        f.seek(end - 128)
        if f.read(3) == b"TAG":
            end -= 128
    if end >= 32:
        f.seek(end - 32)
        footer = f.read(32)
        if footer[:8] == b"APETAGEX":
            tag_size, flags = struct.unpack_from("<II", footer, 12)
            end -= tag_size + (32 if flags & 0x80000000 else 0)  # bit 31: a header too
    return end


def _walk_mp3_frames(f: BinaryIO, start: int, end: int) -> tuple[_MpegFrame, int, int | None]:
    """(first frame, audio frame count, frame count its info header announces or None)."""
    pos, count = start, 0
    first: _MpegFrame | None = None
    while pos < end:
        f.seek(pos)
        frame = _mp3_frame(f.read(4))
        if frame is None:
            if end - pos < 4:
                raise _truncated("MP3", "it ends inside a frame header", None)
            raise InvalidAudio(
                f"the MP3 clip is damaged: no valid MPEG audio frame header at byte {pos}",
                hint=_HINT_DAMAGED,
            )
        if first is None:
            first = frame
        elif (frame.version, frame.sample_rate) != (first.version, first.sample_rate):
            raise InvalidAudio(
                f"the MP3 clip is damaged: the frame at byte {pos} changes the MPEG version "
                "or sample rate",
                hint=_HINT_DAMAGED,
            )
        if pos + frame.length > end:
            raise _truncated("MP3", "its last frame is cut short", pos + frame.length - end)
        pos += frame.length
        count += 1
    assert first is not None  # _sniff found a frame header at start
    announced = _mp3_info_frames(f, start, first)
    if announced is None:
        return first, count, None
    audio_frames = count - 1  # the info frame itself carries no audio
    if audio_frames != announced:
        problem = "truncated" if audio_frames < announced else "damaged"
        raise InvalidAudio(
            f"the MP3 clip is {problem}: its header announces {announced} frames but "
            f"{audio_frames} are present",
            hint=_HINT_TRUNCATED if audio_frames < announced else _HINT_DAMAGED,
        )
    return first, audio_frames, announced


def _mp3_info_frames(f: BinaryIO, start: int, first: _MpegFrame) -> int | None:
    """The frame count of a Xing/Info (LAME) or VBRI header in the first frame, if any."""
    side_info = (17 if first.mono else 32) if first.version == 0b11 else (9 if first.mono else 17)
    f.seek(start + 4 + side_info)
    xing = f.read(12)
    if xing[:4] in (b"Xing", b"Info") and len(xing) == 12:
        flags, frames = struct.unpack_from(">II", xing, 4)
        return frames if flags & 1 else None
    f.seek(start + 4 + 32)  # the VBRI header sits at a fixed offset
    vbri = f.read(18)
    if vbri[:4] == b"VBRI" and len(vbri) == 18:
        return struct.unpack_from(">I", vbri, 14)[0]
    return None


# --- decoding and shared helpers -------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    sample_rate: int
    channels: int
    header_frames: int  # libsndfile's idea of the length, from the headers
    frames: int  # what the decoder actually produced


def _decode(path: str | os.PathLike, container: str) -> _Decoded:
    """Decode the whole stream with libsndfile in fixed blocks; count the frames."""
    # libsndfile (and numpy under it) load only when a compressed clip needs decoding:
    # WAV probing and every process that never probes stay ~20 MiB lighter
    import soundfile as sf

    label = _LABELS[container]
    try:
        with sf.SoundFile(os.fspath(path)) as snd:
            if snd.format != container.upper():
                raise InvalidAudio(
                    f"the {label} clip is read by the decoder as {snd.format}",
                    hint=_HINT_DAMAGED,
                )
            frames = _read_all(snd, label)
            if frames == 0:
                raise InvalidAudio(
                    f"the clip contains no audio: the {label} stream holds no samples",
                    hint=_HINT_EMPTY,
                )
            return _Decoded(snd.samplerate, snd.channels, snd.frames, frames)
    except sf.LibsndfileError as exc:
        raise InvalidAudio(
            f"the {label} clip cannot be decoded: {_reason(exc.code)}", hint=_HINT_DAMAGED
        ) from None


def _read_all(snd: sf.SoundFile, label: str) -> int:
    """Frames decoded until the end of the stream.

    Calls sf_readf_short directly: SoundFile.read() and .blocks() seek after every block
    and stop at the header's frame count, which fails for a FLAC stream of unknown length.
    """
    import numpy as np
    import soundfile as sf

    buf = np.empty(_DECODE_BLOCK * snd.channels, dtype=np.int16)
    ptr = sf._ffi.cast("short *", sf._ffi.from_buffer(buf))
    total = 0
    while True:
        got = sf._snd.sf_readf_short(snd._file, ptr, _DECODE_BLOCK)
        total += got
        error = sf._snd.sf_error(snd._file)
        if error:
            raise InvalidAudio(
                f"the {label} clip is damaged or truncated: decoding failed after {total} "
                f"samples ({_reason(error)})",
                hint=_HINT_DAMAGED,
            )
        if got < _DECODE_BLOCK:
            return total


def _reason(code: int) -> str:
    """libsndfile's text for an error code, tidied ("Error : flac decoder lost sync.")."""
    import soundfile as sf

    text = sf.LibsndfileError(code).error_string.strip()
    text = text.removeprefix("Error : ").removeprefix("Error: ").rstrip(".")
    return (text[:1].lower() + text[1:]) or f"libsndfile error {code}"


def _truncated(label: str, detail: str, missing: int | None) -> InvalidAudio:
    gap = f" ({_n_bytes(missing)} missing)" if missing else ""
    return InvalidAudio(f"the {label} clip is truncated: {detail}{gap}", hint=_HINT_TRUNCATED)


def _n_bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _info(container: str, codec: str, rate: int, channels: int, frames: int) -> AudioInfo:
    return AudioInfo(
        container=container,
        codec=codec,
        media_type=_CANONICAL[container],
        sample_rate=rate,
        channels=channels,
        frames=frames,
        duration_ms=frames * 1000 // rate,
    )
