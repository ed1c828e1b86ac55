/* The local-directory configuration source: read, decode, keep the last good content, and hand
 * the current objects to the snapshot builder. */
#include "gammamesh/config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gammamesh/yaml.h"

#define DEFAULT_MAX_FILE_BYTES (16u << 20)

/* One successfully read version of a file: its objects and the arena that holds them. */
struct content {
    atomic_int refs;
    struct gm_arena arena;
    const struct gm_object **objs;
    size_t n;
    struct content *prev; /* holds objects carried over from the previous version, or NULL */
};

struct gm_config_file {
    char *path;
    off_t size;
    struct timespec mtime;
    uint64_t hash;
    bool seen;             /* size, mtime and hash describe the latest read */
    struct content *good;  /* last good content, NULL when never read successfully */
    struct gm_diags diags; /* problems of the latest read */
};

static void content_unref(struct content *c)
{
    while (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        struct content *prev = c->prev;
        gm_arena_done(&c->arena);
        free(c);
        c = prev;
    }
}

static struct content *content_new(void)
{
    struct content *c = gm_xcalloc(1, sizeof(*c));

    atomic_init(&c->refs, 1);
    gm_arena_init(&c->arena);
    return c;
}

static struct content *content_ref(struct content *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

static void file_free(struct gm_config_file *f)
{
    if (f == NULL)
        return;
    content_unref(f->good);
    gm_diags_done(&f->diags);
    free(f->path);
    free(f);
}

int gm_config_store_init(struct gm_config_store *st, const char *dir)
{
    memset(st, 0, sizeof(*st));
    st->dir = gm_xstrdup(dir);
    st->max_file_bytes = DEFAULT_MAX_FILE_BYTES;
    return 0;
}

void gm_config_store_done(struct gm_config_store *st)
{
    for (size_t i = 0; i < st->n_files; i++)
        file_free(st->files[i]);
    free(st->files);
    free(st->dir);
    memset(st, 0, sizeof(*st));
}

static bool wanted_name(const char *name)
{
    size_t n = strlen(name);

    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted full paths of the files to read; -errno when the directory cannot be read. */
static int list_dir(const char *dir, char ***out, size_t *n_out)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        if (!wanted_name(e->d_name))
            continue;
        GM_VEC_PUSH(v, n, cap);
        v[n - 1] = gm_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    *n_out = n;
    return 0;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ n;
}

/* Identify a document by kind, namespace and name, straight from its YAML. */
static bool doc_identity(const struct gm_ynode *doc, const char **kind, const char **ns,
                         const char **name)
{
    const struct gm_ynode *k = gm_ynode_get(doc, "kind");
    const struct gm_ynode *md = gm_ynode_get(doc, "metadata");
    const struct gm_ynode *nm = md ? gm_ynode_get(md, "name") : NULL;
    const struct gm_ynode *nsn = md ? gm_ynode_get(md, "namespace") : NULL;

    if (!k || !nm || k->type != GM_YNODE_SCALAR || nm->type != GM_YNODE_SCALAR)
        return false;
    *kind = k->str;
    *name = nm->str;
    *ns = nsn && nsn->type == GM_YNODE_SCALAR ? nsn->str : "default";
    return true;
}

/* The previous good version of a document that no longer decodes, if any. */
static const struct gm_object *previous_version(const struct content *old,
                                                const struct gm_ynode *doc)
{
    const char *kind, *ns, *name;

    if (old == NULL || !doc_identity(doc, &kind, &ns, &name))
        return NULL;
    for (size_t i = 0; i < old->n; i++) {
        const struct gm_object *o = old->objs[i];
        if (strcmp(gm_kind_name(o->kind), kind) == 0 && strcmp(o->meta.name, name) == 0 &&
            (o->kind == GM_KIND_NAMESPACE || strcmp(o->meta.namespace, ns) == 0))
            return o;
    }
    return NULL;
}

/* Decode a file's documents into a new content; NULL when the YAML itself does not parse. */
static struct content *decode_file(struct gm_config_file *f, const char *buf, size_t len,
                                   uint64_t *errors)
{
    struct content *c = content_new();
    struct gm_ydocs docs;
    struct gm_arena tree; /* the YAML trees: only read while decoding (objects copy) */
    bool carried = false;

    gm_arena_init(&tree);
    if (gm_yaml_parse(&tree, f->path, buf, len, &docs, &f->diags) < 0) {
        (*errors)++;
        gm_arena_done(&tree);
        content_unref(c);
        return NULL;
    }
    c->objs = GM_ARENA_ARRAY(&c->arena, const struct gm_object *, docs.n + 1);
    for (size_t i = 0; i < docs.n; i++) {
        struct gm_object *o = NULL;
        int rc = gm_object_decode(&c->arena, docs.docs[i], &o, &f->diags);
        if (rc > 0) {
            c->objs[c->n++] = o;
        } else if (rc < 0) {
            (*errors)++;
            const struct gm_object *prev = previous_version(f->good, docs.docs[i]);
            if (prev) {
                c->objs[c->n++] = prev;
                carried = true;
            }
        }
    }
    gm_arena_done(&tree);
    if (carried)
        c->prev = content_ref(f->good);
    return c;
}

/* Re-read one file if it changed; returns 1 when its objects changed. */
static int refresh_file(struct gm_config_store *st, struct gm_config_file *f)
{
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;

    if (stat(f->path, &sb) < 0)
        return 0; /* vanished between listing and reading: the next scan drops it */
    if (f->seen && sb.st_size == f->size && sb.st_mtim.tv_sec == f->mtime.tv_sec &&
        sb.st_mtim.tv_nsec == f->mtime.tv_nsec)
        return 0;
    int rc = gm_read_file(f->path, st->max_file_bytes, &buf, &len);
    if (rc < 0) {
        gm_diags_done(&f->diags);
        struct gm_loc loc = {.file = f->path};
        gm_diags_add(&f->diags, GM_DIAG_ERROR, &loc, NULL, NULL, "cannot read: %s",
                     rc == -EFBIG ? "file is larger than the limit" : strerror(-rc));
        st->load_errors_total++;
        f->seen = false;
        return 0;
    }
    f->size = sb.st_size;
    f->mtime = sb.st_mtim;
    uint64_t h = hash_bytes(buf, len);
    if (f->seen && h == f->hash) {
        free(buf);
        return 0;
    }
    f->seen = true;
    f->hash = h;
    gm_diags_done(&f->diags);
    struct content *c = decode_file(f, buf, len, &st->load_errors_total);
    free(buf);
    if (c == NULL)
        return 0; /* keeps the last good content */
    content_unref(f->good);
    f->good = c;
    return 1;
}

/* Where path is, or would go, in the sorted files. */
static size_t file_slot(const struct gm_config_store *st, const char *path, bool *found)
{
    return gm_sorted_find((void *const *)st->files, st->n_files,
                          offsetof(struct gm_config_file, path), path, found);
}

static struct gm_config_file *find_file(struct gm_config_store *st, const char *path)
{
    bool found;
    size_t i = file_slot(st, path, &found);

    return found ? st->files[i] : NULL;
}

int gm_config_store_scan(struct gm_config_store *st)
{
    char **paths = NULL;
    size_t n = 0;
    int changed = 0;
    int rc = list_dir(st->dir, &paths, &n);

    if (rc < 0)
        return rc;
    struct gm_config_file **next = gm_xcalloc(n + 1, sizeof(*next));
    for (size_t i = 0; i < n; i++) {
        struct gm_config_file *f = find_file(st, paths[i]);
        if (f == NULL) {
            f = gm_xcalloc(1, sizeof(*f));
            f->path = paths[i];
            paths[i] = NULL;
        } else {
            free(paths[i]);
        }
        changed |= refresh_file(st, f);
        next[i] = f;
    }
    for (size_t i = 0; i < st->n_files; i++) {
        bool kept = false;
        for (size_t j = 0; j < n && !kept; j++)
            kept = next[j] == st->files[i];
        if (!kept) {
            changed |= st->files[i]->good != NULL;
            file_free(st->files[i]);
        }
    }
    free(paths);
    free(st->files);
    st->files = next;
    st->n_files = st->cap_files = n;
    if (changed) {
        st->loads_total++;
        st->generation++;
    }
    return changed;
}

int gm_config_store_put(struct gm_config_store *st, const char *key, const struct json_t *doc,
                        struct gm_diags *problems)
{
    bool found;
    size_t i = file_slot(st, key, &found);
    struct gm_config_file *f;

    if (found) {
        f = st->files[i];
    } else {
        f = gm_xcalloc(1, sizeof(*f));
        f->path = gm_xstrdup(key);
        f->seen = true;
        if (st->n_files == st->cap_files) {
            st->cap_files = st->cap_files ? 2 * st->cap_files : 64;
            st->files = gm_xrealloc(st->files, st->cap_files * sizeof(*st->files));
        }
        memmove(st->files + i + 1, st->files + i, (st->n_files - i) * sizeof(*st->files));
        st->files[i] = f;
        st->n_files++;
    }
    gm_diags_done(&f->diags);

    struct content *c = content_new();
    struct gm_object *o = NULL;
    c->objs = GM_ARENA_ARRAY(&c->arena, const struct gm_object *, 1);
    /* The tree is only read while decoding (objects copy what they keep): a scratch arena, so
     * that each entry holds its decoded object alone. */
    struct gm_arena tree;
    gm_arena_init(&tree);
    struct gm_ynode *root = gm_ynode_from_json(&tree, f->path, doc);
    int rc = -EINVAL;
    if (root == NULL) {
        struct gm_loc loc = {.file = f->path};
        gm_diags_add(&f->diags, GM_DIAG_ERROR, &loc, NULL, NULL,
                     "object too large: deeper than 64 levels or more than 100000 nodes");
    } else {
        rc = gm_object_decode(&c->arena, root, &o, &f->diags);
    }
    gm_arena_done(&tree);
    if (problems)
        gm_diags_extend(problems, &f->diags);
    if (rc > 0) {
        c->objs[c->n++] = o;
    } else if (rc < 0) {
        st->load_errors_total++;
        if (f->good) { /* the last good version stays in effect */
            content_unref(c);
            return 0;
        }
    }
    bool changed = c->n > 0 || (f->good && f->good->n > 0);
    content_unref(f->good);
    f->good = c;
    if (changed) {
        st->loads_total++;
        st->generation++;
    }
    return changed;
}

int gm_config_store_remove(struct gm_config_store *st, const char *key)
{
    bool found;
    size_t i = file_slot(st, key, &found);

    if (!found)
        return 0;
    struct gm_config_file *f = st->files[i];
    bool changed = f->good && f->good->n > 0;
    memmove(st->files + i, st->files + i + 1, (st->n_files - i - 1) * sizeof(*st->files));
    st->n_files--;
    file_free(f);
    if (changed) {
        st->loads_total++;
        st->generation++;
    }
    return changed;
}

void gm_config_store_diags(const struct gm_config_store *st, struct gm_diags *out)
{
    for (size_t i = 0; i < st->n_files; i++)
        gm_diags_extend(out, &st->files[i]->diags);
}

/* What a snapshot holds to keep the objects alive. */
struct owner {
    struct content **contents;
    size_t n;
};

static void owner_free(void *p)
{
    struct owner *o = p;

    for (size_t i = 0; i < o->n; i++)
        content_unref(o->contents[i]);
    free(o->contents);
    free(o);
}

static bool same_object(const struct gm_object *a, const struct gm_object *b)
{
    if (a->kind != b->kind || strcmp(a->meta.name, b->meta.name) != 0)
        return false;
    return a->kind == GM_KIND_NAMESPACE || strcmp(a->meta.namespace, b->meta.namespace) == 0;
}

/* The objects already taken for a snapshot, by kind, namespace and name (open addressing; the
 * table is sized for every object up front, at most half full). */
struct seen_set {
    const struct gm_object **v;
    size_t cap;
};

static bool seen_add(struct seen_set *set, const struct gm_object *o)
{
    uint64_t h = gm_hash_str(o->meta.name) * 31 + (uint64_t)o->kind;

    if (o->kind != GM_KIND_NAMESPACE)
        h = h * 1099511628211ULL ^ gm_hash_str(o->meta.namespace);
    for (size_t i = h % set->cap;; i = (i + 1) % set->cap) {
        if (set->v[i] == NULL) {
            set->v[i] = o;
            return true;
        }
        if (same_object(set->v[i], o))
            return false;
    }
}

struct gm_snapshot *gm_config_store_snapshot(struct gm_config_store *st,
                                             const struct gm_snapshot_options *opts)
{
    struct owner *own = gm_xcalloc(1, sizeof(*own));
    const struct gm_object **objs = NULL;
    const struct gm_object **dups = NULL;
    size_t n = 0, cap = 0, nd = 0, capd = 0;

    struct seen_set seen = {0};

    own->contents = gm_xcalloc(st->n_files + 1, sizeof(*own->contents));
    for (size_t i = 0; i < st->n_files; i++)
        seen.cap += st->files[i]->good ? st->files[i]->good->n : 0;
    seen.cap = seen.cap * 2 + 16;
    seen.v = gm_xcalloc(seen.cap, sizeof(*seen.v));
    for (size_t i = 0; i < st->n_files; i++) {
        struct content *c = st->files[i]->good;
        if (c == NULL)
            continue;
        own->contents[own->n++] = content_ref(c);
        for (size_t j = 0; j < c->n; j++) {
            if (!seen_add(&seen, c->objs[j])) {
                GM_VEC_PUSH(dups, nd, capd);
                dups[nd - 1] = c->objs[j];
                continue;
            }
            GM_VEC_PUSH(objs, n, cap);
            objs[n - 1] = c->objs[j];
        }
    }
    struct gm_snapshot *s = gm_snapshot_build(objs, n, opts, own, owner_free);
    for (size_t i = 0; i < nd; i++) {
        char label[300];
        gm_diags_add(&s->diags, GM_DIAG_WARNING, &dups[i]->loc,
                     gm_object_label(dups[i], label, sizeof(label)), NULL,
                     "duplicate object ignored: an earlier file defines it");
    }
    free(objs);
    free(dups);
    free(seen.v);
    return s;
}

static size_t print_diags(const struct gm_diags *d, FILE *out)
{
    char line[2048];
    size_t errors = 0;

    for (size_t i = 0; i < d->n; i++) {
        fprintf(out, "%s\n", gm_diag_format(&d->v[i], line, sizeof(line)));
        errors += d->v[i].severity == GM_DIAG_ERROR;
    }
    return errors;
}

int gm_config_check(const char *dir, const struct gm_snapshot_options *opts, FILE *out,
                    struct gm_snapshot **snap_out)
{
    struct gm_config_store st;
    struct gm_diags d;

    gm_config_store_init(&st, dir);
    int rc = gm_config_store_scan(&st);
    if (rc < 0) {
        gm_config_store_done(&st);
        return rc;
    }
    gm_diags_init(&d);
    gm_config_store_diags(&st, &d);
    size_t errors = print_diags(&d, out);
    gm_diags_done(&d);
    struct gm_snapshot *s = gm_config_store_snapshot(&st, opts);
    errors += print_diags(&s->diags, out);
    gm_config_store_done(&st);
    if (snap_out)
        *snap_out = s;
    else
        gm_snapshot_unref(s);
    return (int)(errors > 1000000 ? 1000000 : errors);
}
