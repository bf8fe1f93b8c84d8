"""Reading report.pdf back, as the offline verifier does: its attachments and its text.

Only what the exporter writes is accepted, and a PDF is hostile input: the PDF structure
is parsed by pyHanko's reader (``pyhanko.pdf_utils.reader``, no rendering), streams are
inflated here with a hard output bound, and whatever could show a reader something the
text layer does not hold is refused rather than interpreted:

* annotations (a free-text box drawn over the page), optional content (layers), forms,
  actions and scripts: anything in the catalogue beyond what WeasyPrint writes — except
  the exporter's own PAdES signature: signature fields only, each an invisible widget
  (zero area), the signature checked for integrity (:mod:`vault.sealing.pdf_signature`);
* text drawn invisible or as outlines only (text rendering mode other than 0);
* inline images, filters other than Flate, fonts without a ``/ToUnicode`` map.

What remains is compared by the verifier: the embedded files (name and bytes) with the
bundle's members, and the characters the pages show with the report rendered from the
checked members. What this cannot catch is written down in docs/formats.md (letters drawn
as vector paths or pictures, colour and position tricks): report.html is the copy that is
checked byte for byte.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: what a content stream, font map or the whole text may inflate to
MAX_STREAM = 16 * 1024 * 1024
MAX_PAGES = 2000
MAX_DEPTH = 8  # nested page trees, name trees and form XObjects
#: the catalogue entries WeasyPrint writes for a PDF/A-3b report; any other is refused
CATALOG_KEYS = frozenset(
    {
        "/Type",
        "/Pages",
        "/Outlines",
        "/Lang",
        "/Names",
        "/OutputIntents",
        "/AF",
        "/Metadata",
        "/MarkInfo",
        "/StructTreeRoot",
        "/ViewerPreferences",
        "/PageMode",
        "/PageLayout",
    }
)
#: what a PAdES signature (pyHanko) adds to the catalogue
SIGNED_CATALOG_KEYS = frozenset({"/AcroForm", "/Extensions", "/Version"})


class PdfRefused(Exception):
    """The PDF is unreadable or holds something the check does not accept; says what."""


@dataclass
class PdfContents:
    attachments: dict[str, bytes] = field(default_factory=dict)
    #: member name -> /AFRelationship (PDF/A-3 requires one per embedded file)
    relationships: dict[str, str] = field(default_factory=dict)
    text: str = ""  # every character the pages show, in drawing order
    xmp: str = ""  # the catalogue's XMP metadata, as text
    signatures: list[Any] = field(default_factory=list)  # SignatureFinding, one per signature


def read_pdf(data: bytes, attachment_limits: dict[str, int]) -> PdfContents:
    """Read ``data`` (report.pdf); ``attachment_limits`` bounds each embedded file by name
    (the size of the member it must equal: a larger one is refused unread)."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # loaded only for a version 4 bundle

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        root = reader.root
        contents = _Reader(root, attachment_limits).contents()
        if "/AcroForm" in root:
            from vault.sealing.pdf_signature import signature_findings

            contents.signatures = signature_findings(reader)
        return contents
    except PdfRefused:
        raise
    except Exception as exc:  # a damaged PDF may raise anything from the parser
        raise PdfRefused(f"it cannot be read as a PDF ({type(exc).__name__})") from None


# --- streams -------------------------------------------------------------------------------


def _stream(obj: Any, limit: int, what: str) -> bytes:
    """A stream's data, inflated to at most ``limit`` bytes (Flate only, no parameters)."""
    obj = _deref(obj)
    raw = getattr(obj, "encoded_data", None)
    if raw is None:
        raise PdfRefused(f"{what} is not a stream")
    filters = obj.get("/Filter")
    filters = [
        str(f) for f in (filters if isinstance(filters, list) else [filters] if filters else [])
    ]
    if obj.get("/DecodeParms") is not None or any(f != "/FlateDecode" for f in filters):
        raise PdfRefused(f"{what} uses a stream filter the exporter never writes")
    out = bytes(raw)
    for _ in filters:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(out, limit + 1)
        except zlib.error:
            raise PdfRefused(f"{what} is damaged") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise PdfRefused(f"{what} inflates past {limit} bytes: refused")
    if len(out) > limit:
        raise PdfRefused(f"{what} is larger than {limit} bytes: refused")
    return out


def _deref(obj: Any) -> Any:
    get = getattr(obj, "get_object", None)
    return get() if get is not None else obj


def _ref(obj: Any) -> tuple[int, int] | None:
    """An indirect object's reference (number, generation); None for a direct object."""
    idnum = getattr(obj, "idnum", None)
    return None if idnum is None else (int(idnum), int(getattr(obj, "generation", 0)))


def _dict(obj: Any) -> dict:
    obj = _deref(obj)
    return obj if isinstance(obj, dict) else {}


# --- the document --------------------------------------------------------------------------


class _Reader:
    def __init__(self, root: Any, limits: dict[str, int]) -> None:
        self._root = _dict(root)
        self._signature_widgets: set[tuple[int, int]] = set()  # object references
        self._limits = limits
        self._fonts: dict[int, _Font] = {}
        self._text: list[str] = []
        self._size = 0

    def contents(self) -> PdfContents:
        allowed = CATALOG_KEYS
        if "/AcroForm" in self._root:
            self._signature_form(_dict(self._root["/AcroForm"]))
            allowed = CATALOG_KEYS | SIGNED_CATALOG_KEYS
        unknown = sorted(set(self._root) - allowed)
        if unknown:
            raise PdfRefused(
                f"it carries {', '.join(unknown)} in its catalogue (forms, actions, layers or "
                "scripts), which a report never has"
            )
        out = PdfContents()
        self._attachments(out)
        for page in self._pages(self._root.get("/Pages"), 0):
            self._page(page)
        out.text = "".join(self._text)
        metadata = self._root.get("/Metadata")
        if metadata is not None:
            out.xmp = _stream(metadata, MAX_STREAM, "the XMP metadata").decode("utf-8", "replace")
        return out

    def _signature_form(self, form: dict) -> None:
        """A form of signature fields only, each its own invisible widget."""
        if set(form) - {"/Fields", "/SigFlags"}:
            raise PdfRefused("its form holds more than signature fields")
        for ref in form.get("/Fields") or []:
            sig = _dict(ref)
            rect = [float(n) for n in sig.get("/Rect") or [0, 0, 0, 0]]
            invisible = len(rect) == 4 and rect[0] == rect[2] and rect[1] == rect[3]
            if sig.get("/FT") != "/Sig" or sig.get("/Kids") or not invisible:
                raise PdfRefused("its form holds a field that is not an invisible signature")
            if _ref(ref) is None:
                raise PdfRefused("its signature field is not an indirect object")
            self._signature_widgets.add(_ref(ref))  # type: ignore[arg-type]

    # -- attachments ----------------------------------------------------------------------

    def _attachments(self, out: PdfContents) -> None:
        names = _dict(self._root.get("/Names"))
        if set(names) - {"/EmbeddedFiles"}:
            raise PdfRefused("its name dictionary holds more than embedded files")
        for name, spec in self._name_tree(names.get("/EmbeddedFiles"), 0):
            if name in out.attachments:
                raise PdfRefused(f"it embeds {name!r} twice")
            spec = _dict(spec)
            if str(spec.get("/UF", name)) != name or str(spec.get("/F", name)) != name:
                raise PdfRefused(f"the embedded file {name!r} goes by another name too")
            limit = self._limits.get(name)
            if limit is None:
                raise PdfRefused(f"it embeds {name!r}, which is not a file of the bundle")
            stream = _dict(spec.get("/EF")).get("/F")
            out.attachments[name] = _stream(stream, limit, f"the embedded file {name}")
            out.relationships[name] = str(spec.get("/AFRelationship", ""))

    def _name_tree(self, node: Any, depth: int) -> Iterator[tuple[str, Any]]:
        node = _dict(node)
        if depth > MAX_DEPTH:
            raise PdfRefused("its embedded-file tree is nested too deeply")
        pairs = node.get("/Names") or []
        for i in range(0, len(pairs) - 1, 2):
            yield str(pairs[i]), pairs[i + 1]
        for kid in node.get("/Kids") or []:
            yield from self._name_tree(kid, depth + 1)

    # -- pages and text -------------------------------------------------------------------

    def _pages(self, node: Any, depth: int) -> Iterator[dict]:
        node = _dict(node)
        if depth > MAX_DEPTH:
            raise PdfRefused("its page tree is nested too deeply")
        if node.get("/Type") == "/Page":
            yield node
            return
        kids = node.get("/Kids") or []
        if len(kids) > MAX_PAGES:
            raise PdfRefused("it has too many pages")
        for kid in kids:
            yield from self._pages(kid, depth + 1)

    def _page(self, page: dict) -> None:
        annotations = _deref(page.get("/Annots")) or []
        if any(_ref(a) not in self._signature_widgets for a in annotations):
            raise PdfRefused(
                "a page carries annotations (drawn over the page), which a report never has"
            )
        contents = page.get("/Contents")
        contents = _deref(contents)
        streams = contents if isinstance(contents, list) else [contents] if contents else []
        data = b"\n".join(_stream(s, MAX_STREAM, "a page's content") for s in streams)
        self._run(data, _dict(page.get("/Resources")), 0)

    def _run(self, data: bytes, resources: dict, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise PdfRefused("its drawings are nested too deeply")
        fonts = _dict(resources.get("/Font"))
        xobjects = _dict(resources.get("/XObject"))
        font: _Font | None = None
        operands: list[Any] = []
        for token in _tokens(data):
            if not isinstance(token, _Op):
                operands.append(token)
                continue
            op = token.name
            if op == "Tf" and operands:
                font = self._font(fonts.get("/" + str(operands[0])))
            elif op == "Tr" and operands and operands[-1] != 0:
                raise PdfRefused("it draws text invisible or as outlines only")
            elif op in ("Tj", "'", '"') and operands:
                self._show(font, [operands[-1]])
            elif op == "TJ" and operands and isinstance(operands[-1], list):
                self._show(font, operands[-1])
            elif op == "Do" and operands:
                self._xobject(xobjects.get("/" + str(operands[0])), depth)
            elif op == "BI":
                raise PdfRefused("it holds an inline image, which the exporter never writes")
            operands = []

    def _xobject(self, obj: Any, depth: int) -> None:
        form = _dict(obj)
        if form.get("/Subtype") != "/Form":
            return  # an image: shows no text
        data = _stream(obj, MAX_STREAM, "a drawing (form XObject)")
        self._run(data, _dict(form.get("/Resources")), depth + 1)

    def _font(self, obj: Any) -> _Font:
        font = _deref(obj)
        key = id(font)
        if key not in self._fonts:
            font = _dict(font)
            if "/ToUnicode" not in font:
                raise PdfRefused("a font has no map to Unicode: its text cannot be read")
            cmap = _stream(font["/ToUnicode"], MAX_STREAM, "a font's map to Unicode")
            wide = font.get("/Subtype") == "/Type0"
            self._fonts[key] = _Font(2 if wide else 1, _parse_cmap(cmap))
        return self._fonts[key]

    def _show(self, font: _Font | None, items: list[Any]) -> None:
        if font is None:
            raise PdfRefused("it shows text before choosing a font")
        for item in items:
            if isinstance(item, bytes):
                shown = font.decode(item)
                self._size += len(shown)
                if self._size > MAX_STREAM:
                    raise PdfRefused("it shows more text than a report has")
                self._text.append(shown)


@dataclass
class _Font:
    width: int  # bytes per character code
    map: dict[int, str]

    def decode(self, codes: bytes) -> str:
        w = self.width
        return "".join(
            self.map.get(int.from_bytes(codes[i : i + w], "big"), "\ufffd")
            for i in range(0, len(codes) - w + 1, w)
        )


_HEX_PAIR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_RANGE = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])")


def _unicode(hexdigits: bytes) -> str:
    return bytes.fromhex(hexdigits.decode()).decode("utf-16-be", "replace")


def _parse_cmap(data: bytes) -> dict[int, str]:
    """A ToUnicode CMap's bfchar and bfrange entries (what WeasyPrint writes)."""
    out: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in _HEX_PAIR.findall(block):
            out[int(src, 16)] = _unicode(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, dst in _RANGE.findall(block):
            start, end = int(lo, 16), int(hi, 16)
            if end - start > 0xFFFF:
                raise PdfRefused("a font's map to Unicode is malformed")
            if dst.startswith(b"["):
                targets = re.findall(rb"<([0-9A-Fa-f]+)>", dst)
                for i, target in enumerate(targets[: end - start + 1]):
                    out[start + i] = _unicode(target)
            else:
                base = _unicode(dst[1:-1])
                for i in range(end - start + 1):
                    out[start + i] = base[:-1] + chr(ord(base[-1]) + i) if base else ""
    return out


# --- content stream tokens -----------------------------------------------------------------


@dataclass(frozen=True)
class _Op:
    name: str


_TOKEN = re.compile(
    rb"""
    (?P<ws>[\x00\t\n\x0c\r ]+|%[^\r\n]*)
  | (?P<hex><[0-9A-Fa-f\s]*>)
  | (?P<open>\[) | (?P<close>\])
  | (?P<dict><<|>>)
  | (?P<lit>\()
  | (?P<name>/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)
  | (?P<num>[+-]?(?:\d+\.?\d*|\.\d+))
  | (?P<op>[A-Za-z'"*][A-Za-z0-9'"*]*)
  | (?P<other>.)
    """,
    re.X | re.S,
)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _literal(data: bytes, at: int) -> tuple[bytes, int]:
    """A literal string starting after its "(" at ``at``: its bytes and the end position."""
    out, depth, i = bytearray(), 1, at
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\\":
            nxt = data[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
            elif nxt.isdigit():
                octal = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
                digits = octal.group(0) if octal else b"0"
                out.append(int(digits, 8) & 0xFF)
                i += 1 + len(digits)
            elif nxt in (b"\r", b"\n"):
                i += 2
            else:
                out += nxt
                i += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
        out += c
        i += 1
    raise PdfRefused("a page's content has an unterminated string")


def _tokens(data: bytes) -> Iterator[Any]:
    """Operands (numbers, names, strings, arrays) and operators of a content stream."""
    stack: list[list[Any]] = []
    pos = 0
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if m is None:  # pragma: no cover - the pattern matches any byte
            raise PdfRefused("a page's content cannot be read")
        pos = m.end()
        kind = m.lastgroup
        value: Any
        if kind in ("ws", "dict", "other"):
            continue
        if kind == "hex":
            digits = re.sub(rb"\s", b"", m.group()[1:-1])
            value = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
        elif kind == "lit":
            value, pos = _literal(data, pos)
        elif kind == "open":
            stack.append([])
            continue
        elif kind == "close":
            if not stack:
                continue
            value = stack.pop()
        elif kind == "name":
            value = m.group()[1:].decode("latin-1")
        elif kind == "num":
            text = m.group().decode()
            value = float(text) if "." in text else int(text)
        else:
            value = _Op(m.group().decode("latin-1"))
            if stack:  # an operator inside an array: malformed, drop the array
                stack.clear()
        if stack:
            stack[-1].append(value)
        else:
            yield value
