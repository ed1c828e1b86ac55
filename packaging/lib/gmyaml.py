"""A small, strict YAML subset: enough for Helm values, Chart.yaml and Kubernetes manifests.

Reads block mappings and sequences, plain and quoted scalars, one-line flow collections,
literal block scalars (|, |-, |+), comments and `---` document separators. Anything outside
that subset (anchors, aliases, tags, folded or multi-line plain scalars, tabs in
indentation, duplicate keys) is an error with its line number rather than a guess, so a file
this module accepts means the same thing to a real YAML parser. Scalars resolve like
Kubernetes' YAML (YAML 1.1 via go-yaml): YAML 1.1 booleans other than true/false (yes, no,
on, off, y, n) are refused because they silently turn into booleans there.

`dump` writes the style of Helm's toYaml (go-yaml v2): keys sorted, two-space indentation,
sequences at their key's indentation, literal blocks for multi-line strings.

Standard library only (Debian's /usr/bin/python3).
"""
import json
import re

__all__ = ["YAMLError", "load_all", "load", "dump"]


class YAMLError(Exception):
    def __init__(self, msg, line=None, name=None):
        self.msg, self.line, self.name = msg, line, name
        Exception.__init__(self, msg)

    def __str__(self):
        where = self.name or "<yaml>"
        if self.line is not None:
            where += ":%d" % self.line
        return "%s: %s" % (where, self.msg)


_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_OCT = re.compile(r"^[-+]?0[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_YAML11_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                 "on", "On", "ON", "off", "Off", "OFF"}
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


def _resolve_plain(s, line):
    if s in _NULLS:
        return None
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    if s in _YAML11_BOOLS:
        raise YAMLError("%r is a boolean in YAML 1.1 (Kubernetes); quote it" % s, line)
    if _INT.match(s):
        return int(s)
    if _OCT.match(s):
        return int(s, 8)  # YAML 1.1 octal, as go-yaml reads 0400
    if _HEX.match(s):
        return int(s, 16)
    if _FLOAT.match(s) and any(c.isdigit() for c in s):
        return float(s)
    if s[0] in "&*!|>%@`":
        raise YAMLError("unsupported YAML (anchor, alias, tag, block or reserved indicator): %r"
                        % s, line)
    if s[0] in "\"'":
        raise YAMLError("unterminated quoted string: %s" % s, line)
    if s.startswith(("- ", "? ")) or s in ("-", "?") or (s[0] == ":" and len(s) > 1 and s[1] == " "):
        raise YAMLError("unexpected indicator in %r" % s, line)
    if ": " in s or s.endswith(":"):
        raise YAMLError("mapping values are not allowed here: %r" % s, line)
    if " #" in s:
        raise YAMLError("comment inside a value: %r" % s, line)
    return s


def _double_quoted(s, line):
    """s starts with '"'; returns (value, rest)."""
    out, i = [], 1
    esc = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/",
           " ": " ", "e": "\x1b", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), s[i + 1:]
        if c == "\\":
            i += 1
            if i >= len(s):
                break
            e = s[i]
            if e in esc:
                out.append(esc[e])
            elif e in "xuU":
                n = {"x": 2, "u": 4, "U": 8}[e]
                h = s[i + 1:i + 1 + n]
                if len(h) != n or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                    raise YAMLError("bad escape \\%s%s" % (e, h), line)
                out.append(chr(int(h, 16)))
                i += n
            else:
                raise YAMLError("bad escape \\%s" % e, line)
        else:
            out.append(c)
        i += 1
    raise YAMLError("unterminated double-quoted string (multi-line strings are unsupported)", line)


def _single_quoted(s, line):
    out, i = [], 1
    while i < len(s):
        if s[i] == "'":
            if s[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), s[i + 1:]
        out.append(s[i])
        i += 1
    raise YAMLError("unterminated single-quoted string (multi-line strings are unsupported)", line)


def _strip_comment(s):
    """Drop a trailing comment (a # at the start or after a space, outside quotes)."""
    q, i = None, 0
    while i < len(s):
        c = s[i]
        if q:
            if q == '"' and c == "\\":
                i += 1
            elif c == q:
                q = None
        elif c in "\"'" and (i == 0 or s[i - 1] in " [{,:-"):
            q = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
        i += 1
    return s.rstrip()


def _scalar_token(s, line):
    """A complete one-line value (after comment stripping): scalar or flow collection."""
    s = s.strip()
    if not s:
        return None
    if s[0] in "[{":
        v, rest = _flow(s, line)
        if rest.strip():
            raise YAMLError("text after a flow collection: %r" % rest.strip(), line)
        return v
    if s[0] == '"':
        v, rest = _double_quoted(s, line)
    elif s[0] == "'":
        v, rest = _single_quoted(s, line)
    else:
        return _resolve_plain(s, line)
    if rest.strip():
        raise YAMLError("text after a quoted string: %r" % rest.strip(), line)
    return v


def _flow(s, line):
    """Parse a flow collection or scalar at the start of s; returns (value, rest)."""
    s = s.lstrip()
    if not s:
        raise YAMLError("unexpected end of flow collection", line)
    if s[0] == "[":
        out, s = [], s[1:].lstrip()
        if s.startswith("]"):
            return out, s[1:]
        while True:
            v, s = _flow(s, line)
            out.append(v)
            s = s.lstrip()
            if s.startswith(","):
                s = s[1:].lstrip()
                if s.startswith("]"):
                    return out, s[1:]
                continue
            if s.startswith("]"):
                return out, s[1:]
            raise YAMLError("expected ',' or ']' in flow sequence", line)
    if s[0] == "{":
        out, s = {}, s[1:].lstrip()
        if s.startswith("}"):
            return out, s[1:]
        while True:
            k, s = _flow_scalar(s, line, key=True)
            s = s.lstrip()
            if not s.startswith(":"):
                raise YAMLError("expected ':' in flow mapping", line)
            v, s = _flow(s[1:], line)
            if k in out:
                raise YAMLError("duplicate key %r" % (k,), line)
            out[k] = v
            s = s.lstrip()
            if s.startswith(","):
                s = s[1:].lstrip()
                if s.startswith("}"):
                    return out, s[1:]
                continue
            if s.startswith("}"):
                return out, s[1:]
            raise YAMLError("expected ',' or '}' in flow mapping", line)
    return _flow_scalar(s, line)


def _flow_scalar(s, line, key=False):
    if s[0] == '"':
        return _double_quoted(s, line)
    if s[0] == "'":
        return _single_quoted(s, line)
    m = re.match(r"[^,\[\]{}]*", s)
    tok = m.group(0)
    if key:
        tok = tok.split(":", 1)[0]
    tok = tok.rstrip()
    if ": " in tok:
        raise YAMLError("':' inside a flow scalar", line)
    rest = s[len(tok):]
    if not tok:
        return None, rest
    return _resolve_plain(tok, line), rest


def _split_key(text, line):
    """If text is `key: ...` or `key:`, return (key, rest); else None."""
    if text[0] in "\"'":
        k, rest = (_double_quoted if text[0] == '"' else _single_quoted)(text, line)
        if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
            return k, rest[1:].strip()
        return None
    m = re.match(r"^([^#\[\]{},\"'][^#]*?):(?: (.*))?$", text)
    if not m or text.startswith(("- ", "? ")) or text == "-":
        return None
    key = m.group(1)
    if ": " in key:
        return None
    return _resolve_key(key, line), (m.group(2) or "").strip()


def _resolve_key(k, line):
    v = _resolve_plain(k, line)
    if isinstance(v, bool) or v is None:
        raise YAMLError("key %r is not a string; quote it" % k, line)
    return v


class _Parser:
    def __init__(self, raw_lines, first_lineno, name):
        self.raw = raw_lines
        self.first = first_lineno
        self.name = name
        self.pos = 0
        self.over = {}  # line index -> (indent, text) overrides for "- key: v" items

    def err(self, msg, idx=None):
        return YAMLError(msg, self.first + (self.pos if idx is None else idx), self.name)

    def peek(self):
        """Index, indent, text of the next significant line, or None."""
        i = self.pos
        while i < len(self.raw):
            if i in self.over:
                ind, t = self.over[i]
                return i, ind, t
            line = self.raw[i]
            if "\t" in line[:len(line) - len(line.lstrip(" \t"))]:
                raise self.err("tab in indentation", i)
            t = _strip_comment(line)
            if t.strip():
                ind = len(t) - len(t.lstrip(" "))
                return i, ind, t.strip()
            i += 1
        return None

    def parse_document(self):
        p = self.peek()
        if p is None:
            return None
        i, ind, _ = p
        v = self.parse_node(ind)
        p = self.peek()
        if p is not None:
            raise self.err("unexpected content (bad indentation?)", p[0])
        return v

    def parse_node(self, indent):
        p = self.peek()
        if p is None or p[1] < indent:
            return None
        i, ind, text = p
        if text == "-" or text.startswith("- "):
            return self.parse_seq(ind)
        if _split_key(text, self.first + i) is not None:
            return self.parse_map(ind)
        self.pos = i + 1
        v = _scalar_token(text, self.first + i)
        nxt = self.peek()
        if nxt is not None and nxt[1] > ind:
            raise self.err("multi-line plain scalars are unsupported", nxt[0])
        return v

    def value_after_key(self, rest, indent, i):
        """The value of `key: rest` on line i, the key at column indent."""
        self.pos = i + 1
        if rest.startswith(("|", ">")):
            return self.block_scalar(rest, indent, i)
        if rest.startswith(("&", "*", "!")):
            raise self.err("anchors, aliases and tags are unsupported", i)
        if rest:
            v = _scalar_token(rest, self.first + i)
            nxt = self.peek()
            if nxt is not None and nxt[1] > indent:
                raise self.err("unexpected indented line after a value (multi-line scalar?)",
                               nxt[0])
            return v
        nxt = self.peek()
        if nxt is None:
            return None
        j, ind, text = nxt
        if ind > indent:
            return self.parse_node(ind)
        if ind == indent and (text == "-" or text.startswith("- ")):
            return self.parse_seq(ind)
        return None

    def parse_map(self, indent):
        out = {}
        while True:
            p = self.peek()
            if p is None or p[1] < indent:
                return out
            i, ind, text = p
            if ind > indent:
                raise self.err("bad indentation", i)
            kv = _split_key(text, self.first + i)
            if kv is None:
                if text == "-" or text.startswith("- "):
                    return out  # a sequence at a parent's level ends this mapping
                raise self.err("expected 'key: value'", i)
            k, rest = kv
            if k in out:
                raise self.err("duplicate key %r" % (k,), i)
            out[k] = self.value_after_key(rest, indent, i)

    def parse_seq(self, indent):
        out = []
        while True:
            p = self.peek()
            if p is None or p[1] < indent:
                return out
            i, ind, text = p
            if ind > indent:
                raise self.err("bad indentation", i)
            if not (text == "-" or text.startswith("- ")):
                return out
            rest = text[1:].lstrip(" ")
            if not rest:
                self.pos = i + 1
                nxt = self.peek()
                out.append(self.parse_node(nxt[1]) if nxt and nxt[1] > indent else None)
                continue
            col = indent + (len(text) - len(rest))
            if rest.startswith(("- ",)) or rest == "-" or _split_key(rest, self.first + i):
                self.over[i] = (col, rest)
                self.pos = i
                out.append(self.parse_node(col))
                self.over.pop(i, None)
                continue
            if rest.startswith(("|", ">")):
                self.pos = i + 1
                out.append(self.block_scalar(rest, indent, i))
                continue
            self.pos = i + 1
            out.append(_scalar_token(rest, self.first + i))
            nxt = self.peek()
            if nxt is not None and nxt[1] > indent:
                raise self.err("unexpected indented line after a sequence item", nxt[0])

    def block_scalar(self, header, indent, i):
        h = _strip_comment(header)
        if h not in ("|", "|-", "|+"):
            raise self.err("only literal block scalars (|, |-, |+) are supported: %r" % h, i)
        lines, j, block_ind = [], i + 1, None
        while j < len(self.raw):
            line = self.raw[j]
            if line.strip() == "":
                lines.append("")
                j += 1
                continue
            ind = len(line) - len(line.lstrip(" "))
            if block_ind is None:
                if ind <= indent:
                    break
                block_ind = ind
            if ind < block_ind:
                if ind > indent:
                    raise self.err("bad indentation in block scalar", j)
                break
            lines.append(line[block_ind:])
            j += 1
        # trailing blank lines belong to chomping, and the lines after them to the parent
        n = len(lines)
        while n and lines[n - 1] == "":
            n -= 1
        trailing = len(lines) - n
        self.pos = j
        body = "\n".join(lines[:n])
        if h == "|-":
            return body
        if h == "|":
            return body + "\n" if n else ""
        return body + "\n" * (trailing + 1) if n else "\n" * trailing


def load_all(text, name=None):
    """All documents of a YAML stream (None for an empty document)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    raw = text.split("\n")
    docs, start, cur = [], 0, []
    for n, line in enumerate(raw):
        if line.startswith("%"):
            raise YAMLError("directives are unsupported", n + 1, name)
        if line == "---" or line.startswith("--- ") or line.startswith("---\t"):
            rest = _strip_comment(line[3:]).strip()
            if rest:
                raise YAMLError("content on the '---' line is unsupported", n + 1, name)
            docs.append((start, cur))
            start, cur = n + 1, []
            continue
        if line == "..." or line.startswith("... "):
            raise YAMLError("'...' document end markers are unsupported", n + 1, name)
        cur.append(line)
    docs.append((start, cur))
    out = []
    for k, (start, lines) in enumerate(docs):
        p = _Parser(lines, start + 1, name)
        v = p.parse_document()
        if k == 0 and v is None and not any(_strip_comment(x).strip() for x in lines):
            continue  # a stream that starts with '---'
        out.append(v)
    return out


def load(text, name=None):
    docs = load_all(text, name)
    if len(docs) > 1:
        raise YAMLError("expected one document, found %d" % len(docs), None, name)
    return docs[0] if docs else None


# --- emitter -------------------------------------------------------------------------------

_PLAIN_OK = re.compile(r"^[A-Za-z0-9_./$(][A-Za-z0-9_./$() :=,@+\-]*$")


def _needs_quotes(s):
    if s == "" or s != s.strip() or not _PLAIN_OK.match(s):
        return True
    if ": " in s or s.endswith(":") or " #" in s:
        return True
    try:
        v = _resolve_plain(s, None)
    except YAMLError:
        return True
    return not isinstance(v, str)


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False) if _needs_quotes(v) else v
    raise TypeError("cannot write %r as YAML" % (v,))


def _literal_ok(s):
    if "\n" not in s or s.startswith((" ", "\n")):
        return False
    body = s[:-1] if s.endswith("\n") else s
    if body.endswith("\n"):
        return False
    return all(line == line.rstrip() and "\t" not in line and "\r" not in line
               for line in body.split("\n"))


def _emit(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        for k in sorted(v, key=str):
            val = v[k]
            key = _scalar(k) if isinstance(k, str) else _scalar(str(k))
            if isinstance(val, dict) and val:
                out.append("%s%s:" % (pad, key))
                _emit(val, indent + 2, out)
            elif isinstance(val, list) and val:
                out.append("%s%s:" % (pad, key))
                _emit(val, indent, out)
            elif isinstance(val, str) and _literal_ok(val):
                out.append("%s%s: %s" % (pad, key, "|" if val.endswith("\n") else "|-"))
                body = val[:-1] if val.endswith("\n") else val
                out.extend(("%s  %s" % (pad, l)).rstrip() for l in body.split("\n"))
            else:
                out.append("%s%s: %s" % (pad, key, _inline(val)))
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _emit(item, indent + 2, sub)
                first = sub[0][indent + 2:]
                out.append("%s- %s" % (pad, first))
                out.extend(sub[1:])
            elif isinstance(item, str) and _literal_ok(item):
                out.append("%s- %s" % (pad, "|" if item.endswith("\n") else "|-"))
                body = item[:-1] if item.endswith("\n") else item
                out.extend(("%s  %s" % (pad, l)).rstrip() for l in body.split("\n"))
            else:
                out.append("%s- %s" % (pad, _inline(item)))
    else:
        out.append(pad + _inline(v))


def _inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def dump(v):
    """YAML text of v, in toYaml's style, without a trailing newline (as Helm's toYaml)."""
    out = []
    if isinstance(v, (dict, list)) and v:
        _emit(v, 0, out)
    else:
        out.append(_inline(v))
    return "\n".join(out)
