"""Render the subset of Go text/template + Helm functions that the gammamesh chart uses.

helm is not packaged in Debian, so packaging/check renders the chart with this instead. The
subset is deliberately small, and the chart's templates must stay inside it (anything else
is an error here, never a silent difference from Helm):

  {{ pipeline }}  {{- ... -}} (whitespace trimming)  {{/* comment */}}
  {{ if pipeline }} ... {{ else if pipeline }} ... {{ else }} ... {{ end }}
  {{ range pipeline }} ... {{ end }}        (dot becomes each element; $ stays the root)
  arguments: .a.b   $.a.b   $   .   "string"   123   true false   (pipeline)
  functions: quote default toYaml nindent indent sub add required eq ne not and or

Values print as Helm prints them: integral numbers without a decimal point, booleans as
true/false. A missing map key is an error (Helm would print nothing), so typos are caught.
"""
import json
import math
import re

try:
    from . import gmyaml
except ImportError:  # run as a plain module from packaging/lib
    import gmyaml

__all__ = ["TemplateError", "render"]


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokenize(src, name):
    """[(kind, value, line)] with kind 'text' or 'action'; trim markers applied."""
    out, pos = [], 0
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        out.append(["text", text, src.count("\n", 0, pos) + 1])
        out.append(["action", m.group(2).strip(), src.count("\n", 0, m.start()) + 1,
                    bool(m.group(3))])
        pos = m.end()
    out.append(["text", src[pos:], src.count("\n", 0, pos) + 1])
    # a right trim marker eats the whitespace at the start of the following text
    for i, t in enumerate(out):
        if t[0] == "action" and t[3] and i + 1 < len(out):
            out[i + 1][1] = out[i + 1][1].lstrip(" \t\r\n")
    return [(t[0], t[1], t[2]) for t in out]


def _parse(tokens, name):
    """Nested nodes: ('text', s) ('out', pipe, line) ('if', [(pipe, body)], else) ('range', pipe, body)."""
    pos = 0

    def block(stop):
        nonlocal pos
        body = []
        while pos < len(tokens):
            kind, val, line = tokens[pos]
            pos += 1
            if kind == "text":
                if val:
                    body.append(("text", val))
                continue
            if val.startswith("/*"):
                if not val.endswith("*/"):
                    raise TemplateError("%s:%d: unterminated comment" % (name, line))
                continue
            word = val.split(None, 1)[0] if val else ""
            if word in ("end", "else"):
                if word not in stop:
                    raise TemplateError("%s:%d: unexpected {{%s}}" % (name, line, val))
                return body, val, line
            if word == "if":
                branches, els = [], None
                cond = val[2:].strip()
                while True:
                    b, term, tline = block(("end", "else"))
                    branches.append((cond, b, line))
                    if term == "end":
                        break
                    rest = term[4:].strip()
                    if rest.startswith("if "):
                        cond = rest[3:].strip()
                        continue
                    if rest:
                        raise TemplateError("%s:%d: unsupported {{%s}}" % (name, tline, term))
                    els, term, _ = block(("end",))
                    break
                body.append(("if", branches, els))
            elif word == "range":
                expr = val[5:].strip()
                if ":=" in expr:
                    raise TemplateError("%s:%d: range with variables is outside the subset"
                                        % (name, line))
                b, term, _ = block(("end",))
                if term != "end":
                    raise TemplateError("%s:%d: {{else}} in range is outside the subset"
                                        % (name, line))
                body.append(("range", expr, b, line))
            elif word in ("with", "define", "template", "block", "include", "define", "tpl"):
                raise TemplateError("%s:%d: {{%s}} is outside the subset" % (name, line, word))
            else:
                body.append(("out", val, line))
        if stop:
            raise TemplateError("%s: missing {{end}}" % name)
        return body, None, None

    body, _, _ = block(())
    return body


def _split_pipe(expr):
    parts, cur, q, depth = [], [], False, 0
    for c in expr:
        if c == '"':
            q = not q
        elif not q and c in "()":
            depth += 1 if c == "(" else -1
        if c == "|" and not q and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur).strip())
    return parts


def _split_args(cmd):
    args, i = [], 0
    while i < len(cmd):
        if cmd[i].isspace():
            i += 1
            continue
        if cmd[i] == '"':
            j = i + 1
            while j < len(cmd) and cmd[j] != '"':
                j += 2 if cmd[j] == "\\" else 1
            args.append(cmd[i:j + 1])
            i = j + 1
        elif cmd[i] == "(":
            depth, j, q = 0, i, False
            while j < len(cmd):
                c = cmd[j]
                if c == '"':
                    q = not q
                elif not q and c == "(":
                    depth += 1
                elif not q and c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth:
                raise TemplateError("unbalanced parentheses in %r" % cmd)
            args.append(cmd[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < len(cmd) and not cmd[j].isspace():
                j += 1
            args.append(cmd[i:j])
            i = j
    return args


def _truth(v):
    return not (v is None or v is False or v == 0 and not isinstance(v, bool) or
                (isinstance(v, (str, list, dict)) and len(v) == 0))


def _to_text(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        # Helm reads every number in values as a float64 and prints it with Go's %v, which
        # switches to e-notation from 1e+06 on (and below 1e-04): refuse rather than differ
        exp = math.floor(math.log10(abs(v))) if v else 0
        if exp >= 6 or exp < -4:
            raise TemplateError("Helm prints %r as %s; quote it in the values" % (v, "%g" % v))
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (int, str)):
        return str(v)
    raise TemplateError("cannot print a %s; use toYaml" % type(v).__name__)


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            return int(str(v))
        except ValueError:
            raise TemplateError("not a number: %r" % (v,))
    return int(v)


def _indent(n, s):
    pad = " " * _num(n)
    return "\n".join(pad + l for l in _to_text(s).split("\n"))


_FUNCS = {
    # Helm's quote is Go's %q of the value's text
    "quote": lambda *a: " ".join(json.dumps(_to_text(x), ensure_ascii=False) for x in a),
    "default": lambda d, v=None: v if _truth(v) else d,
    "toYaml": lambda v: gmyaml.dump(v),
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "sub": lambda a, b: _num(a) - _num(b),
    "add": lambda a, b: _num(a) + _num(b),
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truth(a),
    "and": lambda *a: all(_truth(x) for x in a),
    "or": lambda *a: any(_truth(x) for x in a),
}


def _required(msg, v=None):
    if v is None or v == "":
        raise TemplateError("required value missing: %s" % msg)
    return v


_FUNCS["required"] = _required


class _Ctx:
    def __init__(self, root, dot, name):
        self.root, self.dot, self.name = root, dot, name

    def arg(self, a, line):
        if a.startswith("("):
            return self.pipe(a[1:-1], line)
        if a.startswith('"'):
            return json.loads(a)
        if re.match(r"^-?[0-9]+$", a):
            return int(a)
        if a in ("true", "false"):
            return a == "true"
        if a == ".":
            return self.dot
        if a == "$":
            return self.root
        if a.startswith(".") or a.startswith("$."):
            cur = self.dot if a.startswith(".") else self.root
            path = a[1:] if a.startswith(".") else a[2:]
            walked = ""
            for part in path.split("."):
                walked += "." + part
                if not isinstance(cur, dict):
                    raise TemplateError("%s:%d: %s: %s is not a map" %
                                        (self.name, line, a, walked))
                if part not in cur:
                    raise TemplateError("%s:%d: %s: no key %r" % (self.name, line, a, walked))
                cur = cur[part]
            return cur
        raise TemplateError("%s:%d: unknown argument %r" % (self.name, line, a))

    def pipe(self, expr, line):
        val, have = None, False
        for cmd in _split_pipe(expr):
            args = _split_args(cmd)
            if not args:
                raise TemplateError("%s:%d: empty command in %r" % (self.name, line, expr))
            head = args[0]
            if head in _FUNCS:
                vals = [self.arg(a, line) for a in args[1:]]
                if have:
                    vals.append(val)
                try:
                    val = _FUNCS[head](*vals)
                except TypeError as e:
                    raise TemplateError("%s:%d: %s: %s" % (self.name, line, head, e))
            elif head[0] in '.$"(-0123456789tf' and len(args) == 1 and not have:
                val = self.arg(head, line)
            else:
                raise TemplateError("%s:%d: unknown function %r" % (self.name, line, head))
            have = True
        return val


def _exec(nodes, ctx, out):
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "out":
            out.append(_to_text(ctx.pipe(n[1], n[2])))
        elif n[0] == "if":
            for cond, body, line in n[1]:
                if _truth(ctx.pipe(cond, line)):
                    _exec(body, ctx, out)
                    break
            else:
                if n[2] is not None:
                    _exec(n[2], ctx, out)
        elif n[0] == "range":
            seq = ctx.pipe(n[1], n[3])
            if seq is None:
                continue
            if not isinstance(seq, list):
                raise TemplateError("%s:%d: range over a %s" % (ctx.name, n[3], type(seq).__name__))
            for item in seq:
                _exec(n[2], _Ctx(ctx.root, item, ctx.name), out)


def render(src, root, name="template"):
    """Render template text src with root as both $ and the initial dot."""
    nodes = _parse(_tokenize(src, name), name)
    out = []
    _exec(nodes, _Ctx(root, root, name), out)
    return "".join(out)
