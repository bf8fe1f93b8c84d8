"""Synthetic speech-like test audio, in pure Python (numpy + soundfile, no external tools).

Used by the demo, the tests and the benchmarks. The signal is a crude source-filter voice:
a harmonic series on a gliding pitch, shaped by the formants of a vowel that changes every
syllable, under a syllable-rate envelope with pauses between words, plus fricative bursts
and a little background noise. It is not intelligible, but it has the spectrum and the
on/off rhythm of speech, so codecs treat it like speech and clips are not trivially
compressible.

The output is deterministic: the same ``(fmt, seconds, seed, sample_rate)`` gives the same
bytes.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = ("wav-pcm16", "wav-ulaw", "wav-alaw", "mp3", "ogg-opus", "flac")

MEDIA_TYPES = {
    "wav-pcm16": "audio/wav",
    "wav-ulaw": "audio/wav",
    "wav-alaw": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg-opus": "audio/ogg",
    "flac": "audio/flac",
}

EXTENSIONS = {
    "wav-pcm16": ".wav",
    "wav-ulaw": ".wav",
    "wav-alaw": ".wav",
    "mp3": ".mp3",
    "ogg-opus": ".opus",  # RFC 7845 recommends .opus for Ogg Opus audio
    "flac": ".flac",
}

#: fmt -> (libsndfile format, subtype, sample rate): telephony rates
_ENCODINGS = {
    "wav-pcm16": ("WAV", "PCM_16", 16000),
    "wav-ulaw": ("WAV", "ULAW", 8000),
    "wav-alaw": ("WAV", "ALAW", 8000),
    "mp3": ("MP3", "MPEG_LAYER_III", 16000),
    "ogg-opus": ("OGG", "OPUS", 48000),
    "flac": ("FLAC", "PCM_16", 16000),
}

#: (F1, F2, F3) in Hz of a few vowels (Peterson & Barney averages)
_VOWELS = np.array(
    [
        (730, 1090, 2440),
        (270, 2290, 3010),
        (530, 1840, 2480),
        (570, 840, 2410),
        (300, 870, 2240),
        (660, 1720, 2410),
        (490, 1350, 1690),
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_TOP_HZ = 3600.0  # telephone band: no harmonics above this


#: the rates libopus encodes at; any other input is resampled to the next one up
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def synthesize(fmt: str, seconds: float, *, seed: int = 0, sample_rate: int | None = None) -> bytes:
    """Encoded bytes of a mono speech-like clip ``seconds`` long in format ``fmt``.

    ``sample_rate`` replaces the format's telephony rate. For "ogg-opus" it is the input
    rate: one libopus cannot take (22050, 44100 Hz) is resampled to the next rate of
    :data:`OPUS_RATES` up and named in the OpusHead as the input rate, as opusenc does.
    """
    container, subtype, rate = _encoding(fmt)
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    input_rate = sample_rate or rate
    samples = speech(seconds, input_rate, seed=seed)
    if container == "OGG" and subtype == "OPUS":
        rate = _opus_coding_rate(input_rate)
        samples = _resample(samples, input_rate, rate, seconds)
    else:
        rate = input_rate
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=container, subtype=subtype)
    data = buf.getvalue()
    if container == "OGG":
        if subtype == "OPUS":
            data = _set_opus_input_rate(data, input_rate)
        # libsndfile picks a random Ogg stream serial number; pin it so output is reproducible
        data = _set_ogg_serial(data, _serial_for(seed))
    return data


def write_clip(
    path: str | os.PathLike,
    fmt: str,
    seconds: float,
    *,
    seed: int = 0,
    sample_rate: int | None = None,
) -> Path:
    """Write :func:`synthesize` output to ``path`` and return it as a Path."""
    out = Path(path)
    out.write_bytes(synthesize(fmt, seconds, seed=seed, sample_rate=sample_rate))
    return out


def write_large_wav(path: str | os.PathLike, size_bytes: int, *, sample_rate: int = 8000) -> Path:
    """Stream a mono 16-bit PCM WAV of about ``size_bytes`` (never more) in bounded memory.

    A few different blocks of speech are synthesised once and cycled, so a 1 GiB file takes
    seconds and a few MiB of memory.
    """
    data_bytes = (size_bytes - 44) // 2 * 2
    if data_bytes <= 0:
        raise ValueError("size_bytes must be more than the 44-byte WAV header")
    if 36 + data_bytes > 0xFFFFFFFF:
        raise ValueError("a RIFF WAV cannot hold more than 4 GiB")
    block_seconds = 2**19 / sample_rate  # 1 MiB of 16-bit samples per block
    blocks = [_pcm16(speech(block_seconds, sample_rate, seed=s)) for s in range(4)]
    out = Path(path)
    with out.open("wb") as f:
        f.write(_wav_header(data_bytes, sample_rate))
        left, i = data_bytes, 0
        while left:
            chunk = blocks[i % len(blocks)][:left]
            f.write(chunk)
            left -= len(chunk)
            i += 1
    return out


def speech(seconds: float, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """Speech-like float32 samples in [-1, 1] (mono)."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * sample_rate))
    envelope, formants, onsets = _syllables(n, sample_rate, rng)
    f0 = _pitch(n, sample_rate, rng)
    voiced = _voice(f0, formants, sample_rate)
    out = voiced * envelope
    out /= max(np.abs(out).max(), 1e-9)
    out += _fricatives(n, sample_rate, onsets, rng) + rng.normal(0.0, 0.004, n)
    out *= 0.6 / max(np.abs(out).max(), 1e-9)
    return out.astype(np.float32)


def _voice(f0: np.ndarray, formants: np.ndarray, rate: int) -> np.ndarray:
    """Sum of the harmonics of ``f0``, each weighted by the formant resonances it falls near."""
    n = len(f0)
    hop = max(1, rate // 1000)  # formants and pitch move slowly: weigh harmonics once per ms
    f0_ms, formants_ms = f0[::hop], formants[:, ::hop]
    top = min(_TOP_HZ, rate / 2 - 200)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    # sin(k·φ) by the Chebyshev recurrence: two multiply-adds per harmonic instead of a sin()
    two_cos, prev, cur = 2 * np.cos(phase), np.zeros(n), np.sin(phase)
    out = np.zeros(n)
    for k in range(1, int(top / f0.min()) + 1):
        fk = k * f0_ms
        dist = (fk[None, :] - formants_ms) / _BANDWIDTHS[:, None]
        # resonance gain of the three formants, with a -3 dB/octave source tilt
        gain = (1.0 / (1.0 + dist**2)).sum(axis=0) / k**0.5
        gain[fk > top] = 0.0
        out += np.repeat(gain, hop)[:n] * cur
        prev, cur = cur, two_cos * cur - prev
    return out


def _encoding(fmt: str) -> tuple[str, str, int]:
    try:
        return _ENCODINGS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def _syllables(n: int, rate: int, rng: np.random.Generator):
    """Amplitude envelope, per-sample formants (3, n), and syllable onsets (sample indexes)."""
    envelope = np.zeros(n)
    formants = np.repeat(_VOWELS[0][:, None], n, axis=1)
    onsets: list[int] = []
    pos = int(rng.uniform(0.05, 0.2) * rate)
    while pos < n:
        for _ in range(rng.integers(2, 7)):  # one word: 2..6 syllables at ~4-6 per second
            length = min(int(rng.uniform(0.12, 0.28) * rate), n - pos)
            if length <= 0:
                break
            ramp = np.sin(np.linspace(0.0, np.pi, length)) ** 2
            envelope[pos : pos + length] = ramp * rng.uniform(0.5, 1.0)
            vowel = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.9, 1.1)
            formants[:, pos : pos + length] = vowel[:, None]
            onsets.append(pos)
            pos += length + int(rng.uniform(0.0, 0.05) * rate)
        pos += int(rng.uniform(0.15, 0.6) * rate)  # pause between words
    return envelope, formants, onsets


def _pitch(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A gliding fundamental: a random base voice, wandering ±15 %, falling over each phrase."""
    base = rng.uniform(95.0, 220.0)
    knots = max(2, int(n / rate / 0.3) + 2)
    wander = 1.0 + rng.uniform(-0.15, 0.15, knots)
    contour = np.interp(np.arange(n), np.linspace(0, n, knots), wander)
    declination = 1.0 - 0.1 * ((np.arange(n) / rate) % 3.0) / 3.0
    return base * contour * declination


def _fricatives(n: int, rate: int, onsets: list[int], rng: np.random.Generator) -> np.ndarray:
    """Short bursts of high-passed noise before some syllables (s, f, sh, t sounds)."""
    out = np.zeros(n)
    for onset in onsets:
        if rng.random() > 0.35:
            continue
        length = int(rng.uniform(0.03, 0.08) * rate)
        start = max(0, onset - length)
        noise = np.diff(rng.normal(0.0, 1.0, onset - start + 1))  # first difference: high-pass
        out[start:onset] = noise * np.hanning(len(noise)) * rng.uniform(0.05, 0.15)
    return out


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _wav_header(data_bytes: int, rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _opus_coding_rate(input_rate: int) -> int:
    return next((r for r in OPUS_RATES if r >= input_rate), OPUS_RATES[-1])


def _resample(samples: np.ndarray, rate: int, to: int, seconds: float) -> np.ndarray:
    """Linear interpolation onto the ``to`` grid: enough for a signal band-limited to 3.6 kHz."""
    if rate == to:
        return samples
    out = np.interp(np.arange(round(seconds * to)) / to, np.arange(len(samples)) / rate, samples)
    return out.astype(np.float32)


def _set_opus_input_rate(data: bytes, rate: int) -> bytes:
    """Name ``rate`` as the OpusHead's input sample rate (the CRC is fixed by the caller)."""
    at = 27 + data[26]  # the first page's body: the OpusHead packet
    if data[at : at + 8] != b"OpusHead":
        raise ValueError("no OpusHead on the first Ogg page")
    return data[: at + 12] + struct.pack("<I", rate) + data[at + 16 :]


def _serial_for(seed: int) -> int:
    return (0x5EED0000 + seed * 2654435761) & 0xFFFFFFFF


def _set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite the serial number of every Ogg page (single-stream file) and fix its CRC."""
    out = bytearray(data)
    pos = 0
    while pos + 27 <= len(out):
        if out[pos : pos + 4] != b"OggS":
            raise ValueError("not an Ogg page boundary")
        nsegs = out[pos + 26]
        end = pos + 27 + nsegs + sum(out[pos + 27 : pos + 27 + nsegs])
        out[pos + 14 : pos + 18] = struct.pack("<I", serial)
        out[pos + 22 : pos + 26] = b"\0\0\0\0"
        out[pos + 22 : pos + 26] = struct.pack("<I", _ogg_crc(out[pos:end]))
        pos = end
    return bytes(out)


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def _ogg_crc(page: bytes | bytearray) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc, table = 0, _CRC_TABLE
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ byte) & 0xFF]
    return crc
