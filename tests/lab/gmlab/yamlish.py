"""A small YAML reader and writer for Kubernetes manifests (standard library only).

The reader covers what manifests use: multiple documents, block mappings and sequences (with
the compact `- key: value` form), flow collections (`{a: 1}`, `[a, b]`, JSON), plain, single-
and double-quoted scalars (also over several lines), literal and folded block scalars, comments,
and the `!!str` tag. Anchors, aliases, other tags and complex keys are rejected with an error.
Plain scalars resolve as in YAML 1.2's core schema (null, booleans, integers, floats).

Mappings and sequences come back as `Map` / `Seq` (dict / list subclasses) that remember the
line of each key or item, so callers can report `file:line` for a bad field.

The writer (`dump`) emits block-style YAML that libyaml reads back to the same value; strings
are quoted whenever a plain scalar could be read as something else (YAML 1.1 included).
"""

import json
import math
import re

__all__ = ["YamlError", "Map", "Seq", "load_all", "dump", "plain", "locate"]


class YamlError(ValueError):
    """A syntax error, with the position it was found at (1-based line and column)."""

    def __init__(self, msg, line=None, col=None, file=None):
        super().__init__(msg)
        self.msg, self.line, self.col, self.file = msg, line, col, file

    def __str__(self):
        where = [str(p) for p in (self.file or "<input>", self.line, self.col) if p is not None]
        return "%s: %s" % (":".join(where), self.msg)


class Map(dict):
    """A mapping that remembers where it started and the line of each key."""

    __slots__ = ("line", "key_lines")

    def __init__(self, line=None):
        super().__init__()
        self.line = line
        self.key_lines = {}


class Seq(list):
    """A sequence that remembers where it started and the line of each item."""

    __slots__ = ("line", "item_lines")

    def __init__(self, line=None):
        super().__init__()
        self.line = line
        self.item_lines = []


def plain(value):
    """Return value with every Map/Seq turned into a plain dict/list (deep copy)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def locate(root, path):
    """Best line number for the field at `path` (a sequence of keys and indexes) under root."""
    line = getattr(root, "line", None)
    node = root
    for step in path:
        if isinstance(node, Map) and step in node:
            line = node.key_lines.get(step, line)
            node = node[step]
        elif isinstance(node, Seq) and isinstance(step, int) and 0 <= step < len(node):
            line = node.item_lines[step]
            node = node[step]
        else:
            break
    return line


# ---------------------------------------------------------------------------------------------
# Scalars

_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUES = {"true", "True", "TRUE"}
_FALSES = {"false", "False", "FALSE"}
_INT_RE = re.compile(r"[-+]?[0-9]+$")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+$")
_OCT_RE = re.compile(r"0o[0-7]+$")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF_RE = re.compile(r"[-+]?\.(inf|Inf|INF)$")
_NAN_RE = re.compile(r"\.(nan|NaN|NAN)$")


def resolve_plain(text):
    """Type of a plain (unquoted) scalar under the YAML 1.2 core schema."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _INT_RE.match(text):
        return int(text)
    if _HEX_RE.match(text):
        return int(text[2:], 16)
    if _OCT_RE.match(text):
        return int(text[2:], 8)
    if _FLOAT_RE.match(text):
        return float(text)
    if _INF_RE.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN_RE.match(text):
        return math.nan
    return text


_SCALAR_TAGS = {"!!int": int, "!!float": float, "!!bool": bool, "!!null": type(None)}

_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


# ---------------------------------------------------------------------------------------------
# Reader


class _Line:
    """One physical line of a document: number, indentation and text after the indentation."""

    __slots__ = ("no", "indent", "text", "raw")

    def __init__(self, no, raw):
        self.no = no
        self.raw = raw
        stripped = raw.lstrip(" ")
        self.indent = len(raw) - len(stripped)
        self.text = stripped

    def blank(self):
        """True for an empty line or one that only holds a comment."""
        t = self.text.strip()
        return not t or t.startswith("#")


def _is_seq_item(text):
    return text == "-" or text.startswith("- ") or text.startswith("-\t")


def _strip_comment(text):
    """Remove a trailing ` # comment` from unquoted text and surrounding whitespace."""
    if text.startswith("#"):
        return ""
    m = re.search(r"[ \t]#", text)
    if m:
        text = text[: m.start()]
    return text.strip()


class _Parser:
    """Recursive-descent parser over the lines of one document."""

    def __init__(self, lines, file):
        self.lines = lines
        self.file = file
        self.i = 0

    # -- helpers ------------------------------------------------------------------------------

    def error(self, msg, line=None, col=None):
        if line is None and self.i < len(self.lines):
            line = self.lines[self.i].no
        raise YamlError(msg, line, col, self.file)

    def skip(self):
        """Advance past blank and comment-only lines; return the current line or None."""
        while self.i < len(self.lines):
            ln = self.lines[self.i]
            if not ln.blank():
                if "\t" in ln.raw[: len(ln.raw) - len(ln.raw.lstrip(" \t"))]:
                    self.error("tab character in indentation", ln.no, 1)
                return ln
            self.i += 1
        return None

    # -- documents and block nodes -------------------------------------------------------------

    def document(self):
        if self.skip() is None:
            return None
        value = self.node(-1)
        ln = self.skip()
        if ln is not None:
            self.error("unexpected content (bad indentation?)", ln.no, ln.indent + 1)
        return value

    def node(self, parent_indent):
        """Parse the node at the current line; it must be indented more than parent_indent."""
        ln = self.skip()
        if ln is None or ln.indent <= parent_indent:
            return None
        if _is_seq_item(ln.text):
            return self.sequence(ln.indent)
        if self.key_split(ln) is not None:
            return self.mapping(ln.indent)
        self.i += 1
        return self.inline_value(ln, ln.text, ln.indent, parent_indent)

    def mapping(self, indent):
        m = Map(self.lines[self.i].no)
        while True:
            ln = self.skip()
            if ln is None or ln.indent < indent:
                return m
            if ln.indent > indent:
                self.error("bad indentation of a mapping entry", ln.no, ln.indent + 1)
            if _is_seq_item(ln.text):
                self.error("a sequence item where a mapping key was expected", ln.no, indent + 1)
            split = self.key_split(ln)
            if split is None:
                self.error("expected 'key: value'", ln.no, indent + 1)
            key, rest, rest_col = split
            if key in m:
                self.error("duplicate key %r" % key, ln.no, indent + 1)
            self.i += 1
            m.key_lines[key] = ln.no
            m[key] = self.map_value(ln, rest, rest_col, indent)

    def map_value(self, ln, rest, rest_col, indent):
        """The value after `key:`: inline on the same line, or a block on the next lines."""
        if _strip_comment(rest) == "":
            nxt = self.skip()
            if nxt is not None and nxt.indent == indent and _is_seq_item(nxt.text):
                return self.sequence(indent)
            return self.node(indent)
        return self.inline_value(ln, rest, rest_col, indent)

    def sequence(self, indent):
        s = Seq(self.lines[self.i].no)
        while True:
            ln = self.skip()
            if ln is None or ln.indent < indent:
                return s
            if ln.indent > indent:
                self.error("bad indentation of a sequence item", ln.no, ln.indent + 1)
            if not _is_seq_item(ln.text):
                return s
            s.item_lines.append(ln.no)
            rest = ln.text[1:]
            content = rest.lstrip(" \t")
            if _strip_comment(content) == "":
                self.i += 1
                s.append(self.node(indent))
                continue
            # Compact form ("- key: v", "- - x", "- scalar"): re-read the rest of this line as
            # if it were its own line indented to where the content starts.
            ln.indent = indent + 1 + (len(rest) - len(content))
            ln.text = content
            s.append(self.node(indent))

    def key_split(self, ln):
        """(key, rest, rest_col) if the line starts with an implicit `key:`, else None."""
        text = ln.text
        if text[:1] in ("'", '"'):
            try:
                key, end = _quoted_one_line(text, 0)
            except YamlError:
                return None
            after = text[end:].lstrip(" ")
            if not after.startswith(":") or after[1:2] not in ("", " ", "\t"):
                return None
            pos = len(text) - len(after)
        else:
            if text[:1] in ("[", "{", "#", "|", ">", "&", "*", "!", "%", "@", "`"):
                return None
            if text.startswith("? "):
                self.error("complex mapping keys ('? ') are not supported", ln.no, ln.indent + 1)
            m = re.search(r":(?=[ \t]|$)", text)
            if not m:
                return None
            comment = re.search(r"[ \t]#", text)
            if comment and comment.start() < m.start():
                return None
            key = text[: m.start()].rstrip()
            if not key:
                return None
            pos = m.start()
        rest = text[pos + 1:]
        lead = len(rest) - len(rest.lstrip(" \t"))
        return key, rest.lstrip(" \t"), ln.indent + pos + 1 + lead

    # -- inline values -------------------------------------------------------------------------

    def inline_value(self, ln, text, col, parent_indent):
        """A value that starts on line ln at column col (0-based); self.i is past ln."""
        c = text[:1]
        if c in ("&", "*"):
            self.error("anchors and aliases are not supported", ln.no, col + 1)
        if c == "!":
            return self.tagged(ln, text, col, parent_indent)
        if c in ("|", ">"):
            return self.block_scalar(ln, text, col, parent_indent)
        if c in ("[", "{"):
            self.i -= 1
            return _FlowParser(self, ln, text, col).parse()
        if c in ('"', "'"):
            return self.quoted(ln, text, col, parent_indent)
        return self.plain_scalar(ln, text, col, parent_indent)

    def tagged(self, ln, text, col, parent_indent):
        tag, _, rest = text.partition(" ")
        value = self.inline_value(ln, rest.lstrip(" "), col + len(tag) + 1, parent_indent)
        if tag == "!!str":
            return value if isinstance(value, str) else _plain_text(value)
        if tag in _SCALAR_TAGS:
            typed = resolve_plain(value) if isinstance(value, str) else value
            if tag == "!!float" and isinstance(typed, int) and not isinstance(typed, bool):
                typed = float(typed)
            if not isinstance(typed, _SCALAR_TAGS[tag]) or \
                    isinstance(typed, bool) and tag != "!!bool":
                self.error("%r is not a valid %s" % (value, tag), ln.no, col + 1)
            return typed
        if tag in ("!!map", "!!seq"):
            return value
        self.error("unsupported tag %s" % tag, ln.no, col + 1)
        return None

    def plain_scalar(self, ln, text, col, parent_indent):
        parts = [_strip_comment(text)]
        if re.search(r"[ \t]#", text) is None:
            parts += self.continuation_lines(parent_indent)
        value = _fold(parts)
        if value.startswith(("- ", "? ")) or value in ("-", "?"):
            self.error("unexpected indicator %r" % value[0], ln.no, col + 1)
        if re.search(r":[ \t]", value):
            self.error("a plain value cannot contain ': ' (quote it)", ln.no, col + 1)
        return resolve_plain(value)

    def continuation_lines(self, parent_indent):
        """Further lines of a multi-line plain scalar (more indented, not comments)."""
        parts = []
        while self.i < len(self.lines):
            ln = self.lines[self.i]
            t = ln.text.strip()
            if not t:
                parts.append("")
                self.i += 1
                continue
            if ln.indent <= parent_indent or t.startswith("#"):
                break
            if self.key_split(ln) is not None or _is_seq_item(ln.text):
                self.error("a mapping or sequence cannot follow a scalar here", ln.no,
                           ln.indent + 1)
            parts.append(_strip_comment(t))
            self.i += 1
            if re.search(r"[ \t]#", t):
                break
        while parts and parts[-1] == "":
            parts.pop()
        return parts

    def quoted(self, ln, text, col, parent_indent):
        """A single- or double-quoted scalar, possibly continued on following lines."""
        segments = [text]
        while True:
            joined = "\n".join(segments)
            try:
                value, end = _quoted_multi(joined)
                break
            except _Unterminated:
                if self.i >= len(self.lines):
                    self.error("unterminated quoted string", ln.no, col + 1)
                nxt = self.lines[self.i]
                if nxt.text.strip() and nxt.indent <= parent_indent:
                    self.error("unterminated quoted string", ln.no, col + 1)
                segments.append(nxt.raw)
                self.i += 1
        tail = joined[end:]
        if _strip_comment(tail) != "":
            last = self.lines[self.i - 1]
            self.error("unexpected text after quoted string: %r" % tail.strip(), last.no)
        return value

    def block_scalar(self, ln, text, col, parent_indent):
        """Literal (|) or folded (>) block scalar with optional chomping and indent indicators."""
        m = re.match(r"([|>])([-+]?)([1-9]?)([-+]?)(.*)$", text)
        if not m or _strip_comment(m.group(5)) != "" or (m.group(2) and m.group(4)):
            self.error("bad block scalar header %r" % text, ln.no, col + 1)
        style, chomp = m.group(1), m.group(2) or m.group(4)
        base = max(parent_indent, 0)
        indent = base + int(m.group(3)) if m.group(3) else None
        body = []
        while self.i < len(self.lines):
            cur = self.lines[self.i]
            if not cur.raw.strip():
                body.append("")
                self.i += 1
                continue
            if indent is None:
                if cur.indent <= parent_indent:
                    break
                indent = cur.indent
            if cur.indent < indent:
                break
            body.append(cur.raw[indent:])
            self.i += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        content = "\n".join(body) if style == "|" else _fold_block(body)
        if not body:
            return "" if chomp != "+" else "\n" * trailing
        if chomp == "-":
            return content
        if chomp == "+":
            return content + "\n" + "\n" * trailing
        return content + "\n"


class _Unterminated(Exception):
    pass


_BREAK = "break"   # a line break in the source of a quoted scalar
_JOIN = "join"     # an escaped line break ("\\" at the end of a line): no space


def _quoted_multi(text):
    """Parse a quoted scalar at the start of text (which may span lines); (value, end index)."""
    q = text[0]
    items = []      # (character, escaped) pairs and _BREAK / _JOIN markers
    i = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == q:
            if q == "'" and i + 1 < n and text[i + 1] == "'":
                items.append(("'", True))
                i += 2
                continue
            return _fold_quoted(items), i + 1
        if c == "\\" and q == '"':
            i = _dq_escape(text, i, items)
        elif c == "\n":
            items.append(_BREAK)
            i += 1
        else:
            items.append((c, False))
            i += 1
    raise _Unterminated()


def _dq_escape(text, i, items):
    """Decode the escape at text[i] (a backslash) into items; return the next index."""
    if i + 1 >= len(text):
        raise _Unterminated()
    e = text[i + 1]
    if e == "\n":
        items.append(_JOIN)
        return i + 2
    if e in _ESCAPES:
        items.append((_ESCAPES[e], True))
        return i + 2
    if e in _HEX_ESCAPES:
        width = _HEX_ESCAPES[e]
        digits = text[i + 2: i + 2 + width]
        if len(digits) != width or not re.match(r"[0-9a-fA-F]+$", digits):
            raise YamlError("bad escape \\%s%s" % (e, digits))
        items.append((chr(int(digits, 16)), True))
        return i + 2 + width
    raise YamlError("unknown escape \\%s" % e)


def _strip_items(chars, left=True, right=True):
    """Strip unescaped spaces and tabs from a list of (character, escaped) pairs."""
    lo, hi = 0, len(chars)
    while left and lo < hi and not chars[lo][1] and chars[lo][0] in " \t":
        lo += 1
    while right and hi > lo and not chars[hi - 1][1] and chars[hi - 1][0] in " \t":
        hi -= 1
    return "".join(c for c, _ in chars[lo:hi])


def _fold_quoted(items):
    """YAML line folding for a quoted scalar: a line break becomes a space, n empty lines
    become n newlines, an escaped line break joins; spaces around breaks are dropped."""
    lines, seps = [[]], []
    for it in items:
        if it in (_BREAK, _JOIN):
            seps.append(it)
            lines.append([])
        else:
            lines[-1].append(it)
    if not seps:
        return "".join(c for c, _ in lines[0])
    out = _strip_items(lines[0], left=False, right=seps[0] is _BREAK)
    empties = 0
    for idx in range(1, len(lines)):
        last = idx == len(lines) - 1
        text = _strip_items(lines[idx], right=not last and seps[idx] is _BREAK)
        if not text and not last and seps[idx] is _BREAK:
            empties += 1
            continue
        if empties:
            out += "\n" * empties
        elif seps[idx - 1] is _BREAK:
            out += " "
        out += text
        empties = 0
    return out


def _quoted_one_line(text, start):
    """A quoted scalar that must end on this line; (value, end index)."""
    try:
        value, end = _quoted_multi(text[start:])
    except _Unterminated:
        raise YamlError("unterminated quoted string") from None
    return value, start + end


def _fold(parts):
    """Fold the lines of a multi-line plain scalar: newline -> space, empty line -> newline."""
    out = ""
    empties = 0
    for idx, p in enumerate(parts):
        if idx and not p:
            empties += 1
            continue
        if idx:
            out += "\n" * empties if empties else " "
        out += p
        empties = 0
    return out


def _fold_block(lines):
    """Folding for '>' block scalars: joins normal lines, keeps more-indented ones."""
    out = ""
    prev = None
    blanks = 0
    for line in lines:
        if not line:
            blanks += 1
            continue
        more = line[:1] in (" ", "\t")
        if prev is not None:
            if blanks:
                out += "\n" * (blanks + (1 if (more or prev == "more") else 0))
            else:
                out += " " if (prev == "normal" and not more) else "\n"
        elif blanks:
            out += "\n" * blanks
        out += line
        prev = "more" if more else "normal"
        blanks = 0
    return out


class _FlowParser:
    """Parser for flow collections ({...} and [...]), which may span several lines."""

    def __init__(self, parser, ln, text, col):
        self.p = parser
        self.no = ln.no
        self.text = " " * col + text
        self.pos = col

    def error(self, msg):
        raise YamlError(msg, self.no, self.pos + 1, self.p.file)

    def parse(self):
        value = self.value()
        rest = self.text[self.pos:]
        if _strip_comment(rest) != "":
            self.error("unexpected text after a flow collection")
        self.p.i += 1
        return value

    def peek(self):
        """The next significant character, pulling in following lines as needed."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t":
                self.pos += 1
            if self.pos < len(self.text) and self.text[self.pos] != "#":
                return self.text[self.pos]
            self.p.i += 1
            if self.p.i >= len(self.p.lines):
                self.p.i -= 1
                self.error("unterminated flow collection")
            ln = self.p.lines[self.p.i]
            self.no, self.text, self.pos = ln.no, ln.raw, 0

    def value(self):
        c = self.peek()
        if c == "[":
            return self.seq()
        if c == "{":
            return self.map()
        if c in ("'", '"'):
            return self.quoted()
        if c in ("&", "*", "!"):
            self.error("anchors, aliases and tags are not supported")
        return resolve_plain(self.plain())

    def quoted(self):
        """A quoted scalar; it may continue on the following lines."""
        joined = self.text[self.pos:]
        while True:
            try:
                value, end = _quoted_multi(joined)
                break
            except _Unterminated:
                if self.p.i + 1 >= len(self.p.lines):
                    self.error("unterminated quoted string")
                self.p.i += 1
                ln = self.p.lines[self.p.i]
                joined += "\n" + ln.raw
                self.no, self.text, self.pos = ln.no, ln.raw, 0
            except YamlError as e:
                self.error(e.msg)
        # Continue on the line where the string ended, just after its closing quote.
        self.pos = len(self.text) - (len(joined) - end)
        return value

    def plain(self):
        """Raw text of a plain scalar; it may continue on the following lines."""
        parts = []
        while True:
            start = self.pos
            t = self.text
            while self.pos < len(t):
                c = t[self.pos]
                if c in ",[]{}":
                    break
                if c == ":" and (self.pos + 1 >= len(t) or t[self.pos + 1] in " \t,[]{}"):
                    break
                if c == "#" and (self.pos == start or t[self.pos - 1] in " \t"):
                    break
                self.pos += 1
            parts.append(t[start:self.pos].strip())
            if self.pos < len(t) or self.p.i + 1 >= len(self.p.lines):
                break
            ln = self.p.lines[self.p.i + 1]      # the scalar goes on at the next line
            rest = ln.raw.strip()
            if not rest or rest[0] in ",[]{}#" or rest.startswith(": ") or rest == ":":
                break
            self.p.i += 1
            self.no, self.text, self.pos = ln.no, ln.raw, 0
        return _fold(parts)

    def seq(self):
        s = Seq(self.no)
        self.pos += 1
        while True:
            if self.peek() == "]":
                self.pos += 1
                return s
            s.item_lines.append(self.no)
            s.append(self.value())
            c = self.peek()
            if c == ",":
                self.pos += 1
            elif c != "]":
                self.error("expected ',' or ']' in a flow sequence")

    def map(self):
        m = Map(self.no)
        self.pos += 1
        while True:
            if self.peek() == "}":
                self.pos += 1
                return m
            line = self.no
            c = self.peek()
            if c in "[{":
                self.error("a collection cannot be a mapping key")
            key = self.quoted() if c in ("'", '"') else self.plain()
            value = None
            if self.peek() == ":":
                self.pos += 1
                if self.peek() not in ",}":
                    value = self.value()
            if key in m:
                self.error("duplicate key %r" % key)
            m[key] = value
            m.key_lines[key] = line
            c = self.peek()
            if c == ",":
                self.pos += 1
            elif c != "}":
                self.error("expected ',' or '}' in a flow mapping")


def _plain_text(value):
    """The text a non-string scalar was written as (for keys and !!str)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_documents(text):
    """Split a YAML stream into documents: lists of (line number, raw line)."""
    docs, cur = [], []
    for no, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        if raw.startswith("%") and not any(r.strip() for _, r in cur):
            continue
        if raw == "---" or raw.startswith(("--- ", "---\t")):
            docs.append(cur)
            cur = []
            rest = raw[3:]
            if _strip_comment(rest.strip()) != "":
                cur.append((no, " " * (len(rest) - len(rest.lstrip())) + rest.lstrip()))
            continue
        if raw == "..." or raw.startswith("... "):
            docs.append(cur)
            cur = []
            continue
        cur.append((no, raw))
    docs.append(cur)
    return docs


def load_all(text, file=None):
    """Parse every document in text; returns a list of (first line number, value).

    Empty documents are left out. Raises YamlError with the file, line and column.
    """
    out = []
    for doc in _split_documents(text):
        lines = [_Line(no, raw) for no, raw in doc]
        parser = _Parser(lines, file)
        first = parser.skip()
        if first is None:
            continue
        try:
            value = parser.document()
        except YamlError as e:
            e.file = e.file or file
            if e.line is None:
                e.line = lines[min(parser.i, len(lines) - 1)].no
            raise
        if value is not None:
            out.append((first.no, value))
    return out


# ---------------------------------------------------------------------------------------------
# Writer

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:=@+, ()-]*$")
_YAML11_WORDS = re.compile(r"(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")
_NUMBERISH = re.compile(r"[-+.0-9][-+0-9a-zA-Z_.:]*$")


def _needs_quotes(s):
    if not _PLAIN_SAFE.match(s) or s != s.strip():
        return True
    if ": " in s or s.endswith(":") or " #" in s:
        return True
    if resolve_plain(s) is not s or _YAML11_WORDS.match(s) or _NUMBERISH.match(s):
        return True
    return False


def scalar(value):
    """One scalar as YAML text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    s = str(value)
    return json.dumps(s, ensure_ascii=False) if _needs_quotes(s) else s


def _emit(value, indent, out):
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            key = scalar(str(k))
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, key))
                _emit(v, indent + 2, out)
            else:
                out.append("%s%s: %s" % (pad, key, _inline(v)))
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _emit(item, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append("%s- %s" % (pad, _inline(item)))


def _inline(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


def dump(value):
    """Block-style YAML for one document (a dict, list or scalar), ending in a newline."""
    if isinstance(value, (dict, list)) and value:
        out = []
        _emit(value, 0, out)
        return "\n".join(out) + "\n"
    return _inline(value) + "\n"
