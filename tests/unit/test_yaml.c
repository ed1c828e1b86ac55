/* Unit tests of common/yaml.c (located trees, anchors, limits, syntax errors) and
 * common/diag.c (diagnostic lists and their rendering). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/diag.h"
#include "gammamesh/util.h"
#include "gammamesh/yaml.h"
#include "test.h"

struct parsed {
    struct gm_arena arena;
    struct gm_diags diags;
    struct gm_ydocs docs;
    int rc;
};

static void parse_n(struct parsed *p, const char *text, size_t len)
{
    gm_arena_init(&p->arena);
    gm_diags_init(&p->diags);
    p->rc = gm_yaml_parse(&p->arena, "t.yaml", text, len, &p->docs, &p->diags);
}

static void parse(struct parsed *p, const char *text)
{
    parse_n(p, text, strlen(text));
}

static void done(struct parsed *p)
{
    gm_diags_done(&p->diags);
    gm_arena_done(&p->arena);
}

/* The one diagnostic of a failed parse is at line:col and mentions `what`. */
static void check_error(const struct parsed *p, int line, int col, const char *what)
{
    CHECK_EQ_INT(p->rc, -EINVAL);
    CHECK_EQ_INT(p->docs.n, 0);
    CHECK_EQ_INT(p->diags.n, 1);
    if (p->diags.n != 1)
        return;
    const struct gm_diag *g = &p->diags.v[0];
    CHECK_EQ_INT(g->severity, GM_DIAG_ERROR);
    CHECK_EQ_STR(g->file, "t.yaml");
    CHECK_EQ_INT(g->line, line);
    CHECK_EQ_INT(g->col, col);
    CHECK(g->reason && strstr(g->reason, what) != NULL);
    if (g->reason && !strstr(g->reason, what))
        fprintf(stderr, "  reason was: %s\n", g->reason);
}

static void test_documents(void)
{
    struct parsed p;

    parse(&p, "# leading comment\n"
              "a: 1\n"
              "b:\n"
              "  - x\n"
              "  - 'y'\n"
              "---\n"
              "---\n"
              "# only a comment\n"
              "---\n"
              "- \"q\"\n"
              "- ~\n");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.diags.n, 0);
    CHECK_EQ_INT(p.docs.n, 2); /* the two empty documents are skipped */
    if (p.docs.n == 2) {
        const struct gm_ynode *m = p.docs.docs[0];
        CHECK_EQ_INT(m->type, GM_YNODE_MAP);
        CHECK_EQ_INT(m->n, 2);
        CHECK_EQ_INT(m->loc.line, 2);
        CHECK_EQ_INT(m->loc.col, 1);
        CHECK_EQ_STR(m->loc.file, "t.yaml");
        const struct gm_ynode *a = gm_ynode_get(m, "a");
        CHECK(a && a->type == GM_YNODE_SCALAR && a->plain && strcmp(a->str, "1") == 0);
        CHECK(a && a->loc.line == 2 && a->loc.col == 4);
        const struct gm_ynode *b = gm_ynode_get(m, "b");
        CHECK(b && b->type == GM_YNODE_SEQ && b->n == 2);
        if (b && b->type == GM_YNODE_SEQ && b->n == 2) {
            CHECK_EQ_INT(b->loc.line, 4);
            CHECK_EQ_INT(b->loc.col, 3);
            CHECK_EQ_STR(b->items[1]->str, "y");
            CHECK(!b->items[1]->plain);
            CHECK_EQ_INT(b->items[1]->loc.line, 5);
            CHECK_EQ_INT(b->items[1]->loc.col, 5);
        }
        CHECK(gm_ynode_get(m, "missing") == NULL);
        CHECK(gm_ynode_get(b, "a") == NULL); /* not a map */
        const struct gm_ynode *s = p.docs.docs[1];
        CHECK(s->type == GM_YNODE_SEQ && s->n == 2);
        if (s->type == GM_YNODE_SEQ && s->n == 2) {
            CHECK_EQ_INT(s->loc.line, 10);
            CHECK(gm_ynode_is_null(s->items[1]));
            CHECK(!gm_ynode_is_null(s->items[0]));
        }
    }
    done(&p);

    parse(&p, "");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.docs.n, 0);
    done(&p);
    parse(&p, "# nothing\n---\n...\n");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.docs.n, 0);
    done(&p);
}

static void test_nulls_and_tags(void)
{
    struct parsed p;

    parse(&p, "a: ~\nb: null\nc:\nd: 'null'\ne: NULL\nf: !!str null\ng: \"\"\nh: nulls\n");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.docs.n, 1);
    if (p.docs.n == 1) {
        const struct gm_ynode *m = p.docs.docs[0];
        CHECK(gm_ynode_is_null(gm_ynode_get(m, "a")));
        CHECK(gm_ynode_is_null(gm_ynode_get(m, "b")));
        CHECK(gm_ynode_is_null(gm_ynode_get(m, "c")));
        CHECK(!gm_ynode_is_null(gm_ynode_get(m, "d")));
        CHECK(gm_ynode_is_null(gm_ynode_get(m, "e")));
        CHECK(!gm_ynode_is_null(gm_ynode_get(m, "f"))); /* explicitly a string */
        CHECK(!gm_ynode_is_null(gm_ynode_get(m, "g")));
        CHECK(!gm_ynode_is_null(gm_ynode_get(m, "h")));
        CHECK(gm_ynode_is_null(NULL));
        CHECK(!gm_ynode_is_null(m));
    }
    done(&p);
}

static void test_anchors(void)
{
    struct parsed p;

    parse(&p, "base: &b\n"
              "  x: 1\n"
              "  y: [1, 2]\n"
              "use: *b\n"
              "name: &n hello\n"
              "again: *n\n"
              "list: &l [*n, *b]\n"
              "nested: {k: *l}\n");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.diags.n, 0);
    CHECK_EQ_INT(p.docs.n, 1);
    if (p.docs.n == 1) {
        const struct gm_ynode *m = p.docs.docs[0];
        const struct gm_ynode *base = gm_ynode_get(m, "base");
        CHECK(base && base->type == GM_YNODE_MAP);
        CHECK(gm_ynode_get(m, "use") == base);                    /* an alias shares its target */
        CHECK(base && base->loc.line == 1 && base->loc.col == 7); /* node properties start it */
        const struct gm_ynode *again = gm_ynode_get(m, "again");
        CHECK(again && again == gm_ynode_get(m, "name"));
        CHECK(again && strcmp(again->str, "hello") == 0);
        const struct gm_ynode *list = gm_ynode_get(m, "list");
        CHECK(list && list->n == 2 && list->items[0] == again && list->items[1] == base);
        CHECK(gm_ynode_get(gm_ynode_get(m, "nested"), "k") == list);
    }
    done(&p);

    /* redefinition: the later anchor wins from there on */
    parse(&p, "a: &x one\nb: *x\nc: &x two\nd: *x\n");
    CHECK_EQ_INT(p.rc, 0);
    if (p.docs.n == 1) {
        CHECK_EQ_STR(gm_ynode_get(p.docs.docs[0], "b")->str, "one");
        CHECK_EQ_STR(gm_ynode_get(p.docs.docs[0], "d")->str, "two");
    }
    done(&p);

    parse(&p, "a: *nope\n");
    check_error(&p, 1, 4, "alias *nope");
    done(&p);

    /* an alias inside its own anchor would be a cycle */
    parse(&p, "a: &x [1, *x]\n");
    check_error(&p, 1, 11, "alias *x");
    done(&p);

    /* anchors do not cross documents */
    parse(&p, "a: &x 1\n---\nb: *x\n");
    check_error(&p, 3, 4, "alias *x");
    done(&p);
}

static void test_duplicate_keys_kept(void)
{
    struct parsed p;

    /* the tree keeps both pairs; gm_ynode_get sees the first (the decoder rejects these) */
    parse(&p, "a: 1\nb: 2\na: 3\n");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.diags.n, 0);
    if (p.docs.n == 1) {
        CHECK_EQ_INT(p.docs.docs[0]->n, 3);
        CHECK_EQ_STR(gm_ynode_get(p.docs.docs[0], "a")->str, "1");
    }
    done(&p);
}

static void test_syntax_errors(void)
{
    struct parsed p;

    parse(&p, "a: [1, 2\nb: 3\n");
    check_error(&p, 2, 2, "did not find expected ',' or ']'");
    if (p.diags.n == 1)
        CHECK(strstr(p.diags.v[0].reason, "line 1, column 4") != NULL);
    done(&p);

    parse(&p, "a: 1\n b: 2\n");
    check_error(&p, 2, 3, "mapping values are not allowed");
    done(&p);

    parse(&p, "ok: 1\n---\nkey: \"unterminated\n");
    check_error(&p, 4, 1, "quoted scalar"); /* a syntax error drops the whole stream */
    done(&p);

    parse(&p, "a: b\nc: \xff\n");
    check_error(&p, 2, 4, "UTF-8");
    done(&p);

    parse(&p, "a:\n  - b\n  c: d\n");
    check_error(&p, 3, 3, "YAML syntax error");
    done(&p);
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 2);

    memset(s, '[', (size_t)depth);
    memset(s + depth, ']', (size_t)depth);
    s[2 * depth] = '\n';
    s[2 * depth + 1] = '\0';
    return s;
}

static void test_limits(void)
{
    struct parsed p;
    char *s;

    s = nested(64);
    parse(&p, s);
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.docs.n, 1);
    done(&p);
    free(s);

    s = nested(65);
    parse(&p, s);
    check_error(&p, 1, 65, "nesting deeper than 64");
    done(&p);
    free(s);

    /* a deeply nested block document, as an editor would write it */
    struct gm_buf b;
    gm_buf_init(&b, 0);
    for (int i = 0; i < 70; i++)
        gm_buf_printf(&b, "%*sk%d:\n", i * 2, "", i);
    parse(&p, b.data);
    check_error(&p, 65, 129, "nesting deeper than 64");
    done(&p);
    gm_buf_done(&b);

    /* 100000 nodes pass, one more fails */
    gm_buf_init(&b, 0);
    gm_buf_printf(&b, "[");
    for (int i = 0; i < 99999; i++)
        gm_buf_printf(&b, "%s1", i ? "," : "");
    gm_buf_printf(&b, "]\n");
    parse(&p, b.data);
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.docs.n, 1);
    done(&p);
    gm_buf_done(&b);
    gm_buf_init(&b, 0);
    gm_buf_printf(&b, "[");
    for (int i = 0; i < 100000; i++)
        gm_buf_printf(&b, "%s1", i ? "," : "");
    gm_buf_printf(&b, "]\n");
    parse(&p, b.data);
    check_error(&p, 1, 200000, "more than 100000 nodes");
    done(&p);
    gm_buf_done(&b);

    /* "billion laughs": aliases count their whole target */
    gm_buf_init(&b, 0);
    gm_buf_printf(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 9; i++) {
        gm_buf_printf(&b, "a%d: &a%d [", i, i);
        for (int j = 0; j < 10; j++)
            gm_buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1);
        gm_buf_printf(&b, "]\n");
    }
    parse(&p, b.data);
    check_error(&p, 5, 45, "more than 100000 nodes"); /* the 8th *a3 of a4 */
    done(&p);
    gm_buf_done(&b);

    /* 64 MiB */
    size_t big = (64u << 20) + 1;
    char *huge = calloc(1, big);
    parse_n(&p, huge, big);
    CHECK_EQ_INT(p.rc, -EINVAL);
    CHECK(p.diags.n == 1 && strstr(p.diags.v[0].reason, "64 MiB") != NULL);
    done(&p);
    free(huge);
}

static void test_diag_format(void)
{
    struct gm_diags d, e;
    struct gm_loc loc = {"routes.yaml", 12, 7};
    char buf[256];

    gm_diags_init(&d);
    gm_diags_add(&d, GM_DIAG_ERROR, &loc, "HTTPRoute ns/r", "spec.rules[0].matches[1].path.value",
                 "must start with '%c'", '/');
    gm_diags_add(&d, GM_DIAG_WARNING, &loc, "HTTPRoute ns/r", "spec.rules[0].sessionPersistence",
                 "not supported; ignored");
    gm_diags_add(&d, GM_DIAG_ERROR, NULL, NULL, NULL, "plain %d", 1);
    struct gm_loc noline = {"f.yaml", 0, 0};
    gm_diags_add(&d, GM_DIAG_ERROR, &noline, NULL, "x", "too big");
    CHECK_EQ_INT(d.n, 4);
    CHECK_EQ_INT(gm_diags_errors(&d), 3);
    CHECK_EQ_STR(gm_diag_format(&d.v[0], buf, sizeof(buf)),
                 "routes.yaml:12:7: HTTPRoute ns/r: spec.rules[0].matches[1].path.value: "
                 "must start with '/'");
    CHECK_EQ_STR(gm_diag_format(&d.v[1], buf, sizeof(buf)),
                 "routes.yaml:12:7: HTTPRoute ns/r: spec.rules[0].sessionPersistence: "
                 "warning: not supported; ignored");
    CHECK_EQ_STR(gm_diag_format(&d.v[2], buf, sizeof(buf)), "plain 1");
    CHECK_EQ_STR(gm_diag_format(&d.v[3], buf, sizeof(buf)), "f.yaml: x: too big");
    /* truncation stays terminated */
    char small[10];
    CHECK_EQ_STR(gm_diag_format(&d.v[0], small, sizeof(small)), "routes.ya");

    gm_diags_init(&e);
    gm_diags_add(&e, GM_DIAG_WARNING, &loc, NULL, NULL, "w");
    gm_diags_extend(&e, &d);
    CHECK_EQ_INT(e.n, 5);
    CHECK_EQ_INT(gm_diags_errors(&e), 3);
    CHECK_EQ_STR(e.v[1].field, "spec.rules[0].matches[1].path.value");
    CHECK(e.v[1].field != d.v[0].field); /* copied, not shared */
    gm_diags_done(&d);
    CHECK_EQ_STR(gm_diag_format(&e.v[1], buf, sizeof(buf)),
                 "routes.yaml:12:7: HTTPRoute ns/r: spec.rules[0].matches[1].path.value: "
                 "must start with '/'");
    gm_diags_done(&e);
    gm_diags_done(NULL);
}

int main(void)
{
    test_documents();
    test_nulls_and_tags();
    test_anchors();
    test_duplicate_keys_kept();
    test_syntax_errors();
    test_limits();
    test_diag_format();
    return TEST_DONE();
}
