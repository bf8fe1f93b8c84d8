/* The compiled fast path of verify's chain walk (issue 13).
 *
 * Kernel.run() goes over a page of log rows and moves a ChainWalk and a CompactRange past
 * every row it can prove clean, exactly as the Python fast path would; it stops before
 * the first row it cannot prove, and the Python walk takes that row (its fast path, then
 * the full audit, which names what is wrong). So a stop is never a finding: it only
 * hands a row back. A row is proven clean when all of these hold:
 *
 *   - its seq is the next one (and not the anchored head's, nor one that completes a
 *     checkpoint's size: those are for the Python walk);
 *   - its type column is a plain kind (not a record kind, whose records the Python walk
 *     checks against storage);
 *   - SHA-256(0x00 || entry) equals the stored level-0 Merkle node;
 *   - the entry tag is the HMAC-SHA256 of the log key over the entry's position
 *     (docs/formats.md, "entry tags");
 *   - the entry is canonical JSON in a strict subset whose RFC 8785 form is the bytes
 *     themselves: no whitespace, keys in strictly increasing byte order, strings of
 *     printable ASCII with no escape, integers of at most 15 digits with no leading zero
 *     and no "-0", true/false/null, no float; anything else is "not proven here";
 *   - its fields: "v" is 1 or 2, "log" the client, "seq" the row's seq, "prev" the hex
 *     hash of the previous entry, "type" the type column, "record" the record_id column
 *     (absent when that column is NULL).
 *
 * tests/test_walk_kernel.py checks that whatever this accepts, the Python fast path
 * accepts with the same outcome, on random mutations of real entries.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#define HASH 32
#define MAX_RECORD 128
#define MAX_KINDS 64
#define MAX_LEVELS 64
#define MAX_DEPTH 32
#define MAX_DIGITS 15

typedef struct {
    PyObject_HEAD
    char *kinds[MAX_KINDS]; /* the plain kinds, UTF-8 */
    Py_ssize_t kind_lens[MAX_KINDS];
    int n_kinds;
    char *client;
    Py_ssize_t client_len;
    SHA256_CTX inner; /* after the key's inner pad and the message's fixed start */
    SHA256_CTX outer; /* after the key's outer pad */
} Kernel;

/* ---- the JSON subset --------------------------------------------------------------- */

typedef struct {
    const unsigned char *p, *end;
} Cursor;

typedef struct {
    const unsigned char *s; /* a string's bytes (without quotes) or a number's digits */
    Py_ssize_t n;
    int kind; /* 's' string, 'i' integer, 'o' other */
} Value;

static int value(Cursor *c, int depth, Value *out);

/* PLAIN[c]: c may stand for itself in a canonical string (printable ASCII but '"' and '\\';
 * escapes and control characters are not proven here) */
static unsigned char PLAIN[256];

static void init_plain(void) {
    for (int c = 0x20; c <= 0x7e; c++)
        PLAIN[c] = c != '"' && c != '\\';
}

static int string(Cursor *c, Value *out) {
    const unsigned char *p = c->p + 1, *end = c->end;
    const unsigned char *start = p;
    while (p < end && PLAIN[*p])
        p++;
    if (p >= end || *p != '"')
        return 0;
    if (out) {
        out->s = start;
        out->n = p - start;
        out->kind = 's';
    }
    c->p = p + 1;
    return 1;
}

static int number(Cursor *c, Value *out) {
    const unsigned char *p = c->p, *end = c->end, *start = c->p;
    if (*p == '-')
        p++;
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    Py_ssize_t n = p - digits;
    if (n == 0 || n > MAX_DIGITS || (n > 1 && *digits == '0'))
        return 0;
    if (start != digits && n == 1 && *digits == '0')
        return 0; /* "-0" reads back as 0 */
    if (out) {
        out->s = start;
        out->n = p - start;
        out->kind = 'i';
    }
    c->p = p;
    return 1;
}

static int literal(Cursor *c, const char *word, Py_ssize_t n) {
    if (c->end - c->p < n || memcmp(c->p, word, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* keys must rise strictly: that is msgspec's sorted order, and RFC 8785's for ASCII */
static int key_after(const Value *prev, const Value *key) {
    if (prev->s == NULL)
        return 1;
    Py_ssize_t n = prev->n < key->n ? prev->n : key->n;
    int cmp = memcmp(prev->s, key->s, n);
    return cmp < 0 || (cmp == 0 && prev->n < key->n);
}

typedef struct {
    Value log, prev, record, seq, type, v;
} Fields;

static void take_field(Fields *f, const Value *key, const Value *val) {
    Value *slot = NULL;
#define FIELD(name)                                                                        \
    if (key->n == (Py_ssize_t)sizeof(#name) - 1 && memcmp(key->s, #name, key->n) == 0)       \
        slot = &f->name;
    FIELD(log) FIELD(prev) FIELD(record) FIELD(seq) FIELD(type) FIELD(v)
#undef FIELD
    if (slot)
        *slot = *val;
}

static int object(Cursor *c, int depth, Fields *fields) {
    Value prev_key = {NULL, 0, 0};
    c->p++; /* '{' */
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 1;
    }
    for (;;) {
        Value key, val;
        if (c->p >= c->end || *c->p != '"' || !string(c, &key) || !key_after(&prev_key, &key))
            return 0;
        if (c->p >= c->end || *c->p != ':')
            return 0;
        c->p++;
        if (!value(c, depth + 1, &val))
            return 0;
        if (fields)
            take_field(fields, &key, &val);
        prev_key = key;
        if (c->p >= c->end)
            return 0;
        if (*c->p == '}') {
            c->p++;
            return 1;
        }
        if (*c->p != ',')
            return 0;
        c->p++;
    }
}

static int array(Cursor *c, int depth) {
    c->p++; /* '[' */
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 1;
    }
    for (;;) {
        if (!value(c, depth + 1, NULL) || c->p >= c->end)
            return 0;
        if (*c->p == ']') {
            c->p++;
            return 1;
        }
        if (*c->p != ',')
            return 0;
        c->p++;
    }
}

static int value(Cursor *c, int depth, Value *out) {
    if (depth > MAX_DEPTH || c->p >= c->end)
        return 0;
    if (out)
        out->kind = 'o';
    switch (*c->p) {
    case '"':
        return string(c, out);
    case '{':
        return object(c, depth, NULL);
    case '[':
        return array(c, depth);
    case 't':
        return literal(c, "true", 4);
    case 'f':
        return literal(c, "false", 5);
    case 'n':
        return literal(c, "null", 4);
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
            return number(c, out);
        return 0;
    }
}

/* ---- one row ----------------------------------------------------------------------- */

typedef struct {
    long long expected_seq;
    unsigned char prev[HASH];
    char prev_record[MAX_RECORD]; /* the previous entry's record id */
    Py_ssize_t prev_record_len;   /* -1: it had none */
    unsigned long long size;
    unsigned char hashes[MAX_LEVELS][HASH];
    int count;
} State;

static int same_text(const Value *v, const char *s, Py_ssize_t n) {
    return v->kind == 's' && v->n == n && memcmp(v->s, s, n) == 0;
}

static int is_integer(const Value *v, long long want) {
    /* the value is an integer literal of at most MAX_DIGITS digits, as number() took it */
    if (v->kind != 'i' || want < 0 || v->s[0] == '-')
        return 0;
    long long got = 0;
    for (Py_ssize_t i = 0; i < v->n; i++)
        got = got * 10 + (v->s[i] - '0');
    return got == want;
}

static int hex_matches(const Value *v, const unsigned char *hash) {
    static const char digits[] = "0123456789abcdef";
    if (v->kind != 's' || v->n != 2 * HASH)
        return 0;
    for (int i = 0; i < HASH; i++)
        if (v->s[2 * i] != digits[hash[i] >> 4] || v->s[2 * i + 1] != digits[hash[i] & 15])
            return 0;
    return 1;
}

/* A bytes-like value's bytes: bytes directly (SQLite), else its buffer (a memoryview from
 * PostgreSQL). 0 for None or anything without a buffer. */
typedef struct {
    const unsigned char *buf;
    Py_ssize_t len;
    int held;
    Py_buffer view;
} Bytes;

static int bytes_of(PyObject *obj, Bytes *b) {
    b->held = 0;
    if (PyBytes_CheckExact(obj)) {
        b->buf = (const unsigned char *)PyBytes_AS_STRING(obj);
        b->len = PyBytes_GET_SIZE(obj);
        return 1;
    }
    if (obj == Py_None || PyObject_GetBuffer(obj, &b->view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        return 0;
    }
    b->buf = b->view.buf, b->len = b->view.len, b->held = 1;
    return 1;
}

static void release(Bytes *b) {
    if (b->held)
        PyBuffer_Release(&b->view);
}

static int tag_matches(Kernel *k, long long seq, const unsigned char *digest,
                       const unsigned char *tag) {
    /* RFC 2104 with the pads hashed once: inner(len32(8) u64(seq) len32(32) hash) */
    unsigned char msg[16], inner_hash[HASH], mac[HASH];
    unsigned long long s = (unsigned long long)seq;
    msg[0] = 0, msg[1] = 0, msg[2] = 0, msg[3] = 8;
    for (int i = 0; i < 8; i++)
        msg[4 + i] = (unsigned char)(s >> (56 - 8 * i));
    msg[12] = 0, msg[13] = 0, msg[14] = 0, msg[15] = HASH;
    SHA256_CTX ctx = k->inner;
    SHA256_Update(&ctx, msg, sizeof msg);
    SHA256_Update(&ctx, digest, HASH);
    SHA256_Final(inner_hash, &ctx);
    ctx = k->outer;
    SHA256_Update(&ctx, inner_hash, HASH);
    SHA256_Final(mac, &ctx);
    return CRYPTO_memcmp(mac, tag, HASH) == 0;
}

static int entry_matches(Kernel *k, State *st, const unsigned char *raw, Py_ssize_t raw_len,
                         long long seq, const char *kind, Py_ssize_t kind_len,
                         const char *record, Py_ssize_t record_len) {
    Cursor c = {raw, raw + raw_len};
    Fields f;
    memset(&f, 0, sizeof f);
    if (c.p >= c.end || *c.p != '{' || !object(&c, 0, &f) || c.p != c.end)
        return 0;
    if (!(is_integer(&f.v, 1) || is_integer(&f.v, 2)))
        return 0;
    if (!same_text(&f.log, k->client, k->client_len) || !is_integer(&f.seq, seq))
        return 0;
    if (!same_text(&f.type, kind, kind_len) || !hex_matches(&f.prev, st->prev))
        return 0;
    if (record == NULL)
        return f.record.s == NULL; /* absent, as the NULL column says */
    return same_text(&f.record, record, record_len);
}

static void append_leaf(State *st, const unsigned char *leaf) {
    unsigned char node[HASH];
    unsigned long long index = st->size;
    static const unsigned char node_prefix = 1;
    memcpy(node, leaf, HASH);
    while (index & 1) {
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &node_prefix, 1);
        SHA256_Update(&ctx, st->hashes[--st->count], HASH);
        SHA256_Update(&ctx, node, HASH);
        SHA256_Final(node, &ctx);
        index >>= 1;
    }
    memcpy(st->hashes[st->count++], node, HASH);
    st->size++;
}

static int plain_kind(const Kernel *k, const char *kind, Py_ssize_t len) {
    for (int i = 0; i < k->n_kinds; i++)
        if (k->kind_lens[i] == len && memcmp(k->kinds[i], kind, len) == 0)
            return 1;
    return 0;
}

/* 1: the row is proven clean and the state moved past it; 0: hand it to the Python walk.
 * record_len -1: the record_id column is NULL; tag or leaf NULL: there is none. */
static int check(Kernel *k, State *st, long long seq, const unsigned char *raw,
                 Py_ssize_t raw_len, const unsigned char *tag, Py_ssize_t tag_len,
                 const char *kind, Py_ssize_t kind_len, const char *record,
                 Py_ssize_t record_len, const unsigned char *leaf, Py_ssize_t leaf_len,
                 long long anchor_seq, unsigned long long next_due) {
    if (seq != st->expected_seq || seq == anchor_seq || st->size + 1 >= next_due)
        return 0;
    if (leaf == NULL || leaf_len != HASH || tag == NULL || tag_len != HASH ||
        record_len > MAX_RECORD || !plain_kind(k, kind, kind_len))
        return 0;
    unsigned char digest[HASH];
    static const unsigned char leaf_prefix = 0;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &leaf_prefix, 1);
    SHA256_Update(&ctx, raw, raw_len);
    SHA256_Final(digest, &ctx);
    if (memcmp(leaf, digest, HASH) != 0 || !tag_matches(k, seq, digest, tag) ||
        !entry_matches(k, st, raw, raw_len, seq, kind, kind_len,
                       record_len < 0 ? NULL : record, record_len))
        return 0;
    st->expected_seq = seq + 1;
    memcpy(st->prev, digest, HASH);
    st->prev_record_len = record_len;
    if (record_len > 0)
        memcpy(st->prev_record, record, record_len);
    append_leaf(st, digest);
    return 1;
}

/* check() for a row from Python: (seq, entry, tag, type, record_id), its leaf or NULL */
static int step(Kernel *k, State *st, PyObject *row, long long seq, PyObject *leaf_obj,
                long long anchor_seq, unsigned long long next_due) {
    if (leaf_obj == NULL)
        return 0;
    PyObject *kind = PyTuple_GET_ITEM(row, 3), *record = PyTuple_GET_ITEM(row, 4);
    if (!PyUnicode_CheckExact(kind))
        return 0;
    Py_ssize_t kind_len, record_len = -1;
    const char *kind_s = PyUnicode_AsUTF8AndSize(kind, &kind_len), *record_s = NULL;
    if (kind_s == NULL)
        return PyErr_Clear(), 0;
    if (record != Py_None) {
        if (!PyUnicode_CheckExact(record) ||
            (record_s = PyUnicode_AsUTF8AndSize(record, &record_len)) == NULL)
            return PyErr_Clear(), 0;
    }
    Bytes raw, tag, leaf;
    if (!bytes_of(PyTuple_GET_ITEM(row, 1), &raw))
        return 0;
    int ok = 0;
    if (bytes_of(leaf_obj, &leaf)) {
        if (bytes_of(PyTuple_GET_ITEM(row, 2), &tag)) {
            ok = check(k, st, seq, raw.buf, raw.len, tag.buf, tag.len, kind_s, kind_len,
                       record_s, record_len, leaf.buf, leaf.len, anchor_seq, next_due);
            release(&tag);
        }
        release(&leaf);
    }
    release(&raw);
    return ok;
}

/* 1 and *seq set, or 0 (the item is not a tuple of this size starting with an int64) */
static int seq_of(PyObject *tuple, Py_ssize_t size, long long *seq) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != size)
        return 0;
    int overflow = 0;
    *seq = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(tuple, 0), &overflow);
    if (*seq == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return !overflow;
}

/* ---- the walk's state in and out --------------------------------------------------- */

static int load_state(PyObject *chain, PyObject *tree, State *st) {
    PyObject *seq = NULL, *prev = NULL, *size = NULL, *hashes = NULL, *record = NULL;
    int ok = 0;
    if (!(seq = PyObject_GetAttrString(chain, "expected_seq")) ||
        !(prev = PyObject_GetAttrString(chain, "prev_hash")) ||
        !(record = PyObject_GetAttrString(chain, "prev_record")) ||
        !(size = PyObject_GetAttrString(tree, "_size")) ||
        !(hashes = PyObject_GetAttrString(tree, "_hashes")))
        goto done;
    st->prev_record_len = -1;
    if (record != Py_None) {
        const char *text = PyUnicode_Check(record)
                               ? PyUnicode_AsUTF8AndSize(record, &st->prev_record_len)
                               : NULL;
        if (text == NULL || st->prev_record_len > MAX_RECORD)
            goto done;
        memcpy(st->prev_record, text, st->prev_record_len);
    }
    st->expected_seq = PyLong_AsLongLong(seq);
    st->size = PyLong_AsUnsignedLongLong(size);
    if (PyErr_Occurred())
        goto done;
    Py_ssize_t hex_len;
    const char *hex = PyUnicode_Check(prev) ? PyUnicode_AsUTF8AndSize(prev, &hex_len) : NULL;
    if (hex == NULL || hex_len != 2 * HASH || !PyList_Check(hashes) ||
        PyList_GET_SIZE(hashes) > MAX_LEVELS)
        goto done;
    for (int i = 0; i < HASH; i++) {
        int byte = 0;
        for (int j = 0; j < 2; j++) {
            char ch = hex[2 * i + j];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0)
                goto done;
            byte = byte * 16 + d;
        }
        st->prev[i] = (unsigned char)byte;
    }
    st->count = (int)PyList_GET_SIZE(hashes);
    for (int i = 0; i < st->count; i++) {
        PyObject *h = PyList_GET_ITEM(hashes, i);
        if (!PyBytes_CheckExact(h) || PyBytes_GET_SIZE(h) != HASH)
            goto done;
        memcpy(st->hashes[i], PyBytes_AS_STRING(h), HASH);
    }
    ok = 1;
done:
    if (!ok)
        PyErr_Clear();
    Py_XDECREF(seq);
    Py_XDECREF(prev);
    Py_XDECREF(size);
    Py_XDECREF(hashes);
    Py_XDECREF(record);
    return ok;
}

static int store_state(PyObject *chain, PyObject *tree, const State *st) {
    static const char digits[] = "0123456789abcdef";
    char hex[2 * HASH];
    for (int i = 0; i < HASH; i++) {
        hex[2 * i] = digits[st->prev[i] >> 4];
        hex[2 * i + 1] = digits[st->prev[i] & 15];
    }
    PyObject *hashes = PyList_New(st->count);
    if (hashes == NULL)
        return -1;
    for (int i = 0; i < st->count; i++) {
        PyObject *h = PyBytes_FromStringAndSize((const char *)st->hashes[i], HASH);
        if (h == NULL) {
            Py_DECREF(hashes);
            return -1;
        }
        PyList_SET_ITEM(hashes, i, h);
    }
    PyObject *seq = PyLong_FromLongLong(st->expected_seq);
    PyObject *prev = PyUnicode_FromStringAndSize(hex, sizeof hex);
    PyObject *size = PyLong_FromUnsignedLongLong(st->size);
    PyObject *record = st->prev_record_len < 0
                           ? Py_NewRef(Py_None)
                           : PyUnicode_DecodeUTF8(st->prev_record, st->prev_record_len, NULL);
    int rc = -1;
    if (seq && prev && size && record && PyObject_SetAttrString(chain, "expected_seq", seq) == 0 &&
        PyObject_SetAttrString(chain, "prev_hash", prev) == 0 &&
        PyObject_SetAttrString(chain, "prev_record", record) == 0 &&
        PyObject_SetAttrString(tree, "_hashes", hashes) == 0 &&
        PyObject_SetAttrString(tree, "_size", size) == 0)
        rc = 0;
    Py_XDECREF(seq);
    Py_XDECREF(prev);
    Py_XDECREF(size);
    Py_XDECREF(record);
    Py_DECREF(hashes);
    return rc;
}

static PyObject *Kernel_run(Kernel *self, PyObject *args) {
    PyObject *rows, *leaves, *chain, *tree;
    Py_ssize_t start;
    long long anchor_seq;
    unsigned long long next_due;
    if (!PyArg_ParseTuple(args, "O!O!nOOLK:run", &PyList_Type, &rows, &PyList_Type, &leaves,
                          &start, &chain, &tree, &anchor_seq, &next_due))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows), m = PyList_GET_SIZE(leaves), i = start < 0 ? 0 : start;
    State st;
    long long seq, idx = -1;
    if (i >= n || !seq_of(PyList_GET_ITEM(rows, i), 5, &seq) || !load_state(chain, tree, &st))
        return PyLong_FromSsize_t(i);
    /* the first leaf at or after the row's seq (leaves rise by idx, as rows by seq) */
    Py_ssize_t lo = 0, hi = m;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (!seq_of(PyList_GET_ITEM(leaves, mid), 2, &idx))
            return PyLong_FromSsize_t(i);
        if (idx < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    Py_ssize_t j = lo, first = i;
    if (j < m && !seq_of(PyList_GET_ITEM(leaves, j), 2, &idx))
        return PyLong_FromSsize_t(i);
    while (i < n) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!seq_of(row, 5, &seq))
            break;
        while (j < m && idx < seq)
            if (++j < m && !seq_of(PyList_GET_ITEM(leaves, j), 2, &idx))
                j = m; /* not a leaf row: no leaf for what follows; the rows go back */
        PyObject *leaf = j < m && idx == seq ? PyTuple_GET_ITEM(PyList_GET_ITEM(leaves, j), 1)
                                             : NULL;
        if (!step(self, &st, row, seq, leaf, anchor_seq, next_due))
            break;
        i++;
    }
    if (i > first && store_state(chain, tree, &st) != 0)
        return NULL;
    return PyLong_FromSsize_t(i);
}

/* ---- the type ---------------------------------------------------------------------- */

static int Kernel_init(Kernel *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"client", "key", "prefix", "plain_kinds", NULL};
    const char *client, *key, *prefix;
    Py_ssize_t client_len, key_len, prefix_len;
    PyObject *kinds;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#y#y#O!:Kernel", kwlist, &client,
                                     &client_len, &key, &key_len, &prefix, &prefix_len,
                                     &PyFrozenSet_Type, &kinds))
        return -1;
    if (key_len > 64) {
        PyErr_SetString(PyExc_ValueError, "the kernel takes a key of at most one block");
        return -1;
    }
    for (int i = 0; i < self->n_kinds; i++)
        PyMem_Free(self->kinds[i]);
    self->n_kinds = 0;
    unsigned char pad[64];
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] ^= 0x36;
    SHA256_Init(&self->inner);
    SHA256_Update(&self->inner, pad, 64);
    SHA256_Update(&self->inner, prefix, prefix_len);
    for (int i = 0; i < 64; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&self->outer);
    SHA256_Update(&self->outer, pad, 64);
    OPENSSL_cleanse(pad, sizeof pad);
    PyMem_Free(self->client);
    self->client = PyMem_Malloc(client_len + 1);
    if (self->client == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->client, client, client_len + 1);
    self->client_len = client_len;
    PyObject *it = PyObject_GetIter(kinds), *kind;
    if (it == NULL)
        return -1;
    while ((kind = PyIter_Next(it)) != NULL) {
        Py_ssize_t len;
        const char *text = PyUnicode_Check(kind) ? PyUnicode_AsUTF8AndSize(kind, &len) : NULL;
        char *copy = text && self->n_kinds < MAX_KINDS ? PyMem_Malloc(len + 1) : NULL;
        Py_DECREF(kind);
        if (copy == NULL) {
            Py_DECREF(it);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "plain kinds are at most 64 strings");
            return -1;
        }
        memcpy(copy, text, len + 1);
        self->kinds[self->n_kinds] = copy;
        self->kind_lens[self->n_kinds++] = len;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static void Kernel_dealloc(Kernel *self) {
    OPENSSL_cleanse(&self->inner, sizeof self->inner);
    OPENSSL_cleanse(&self->outer, sizeof self->outer);
    PyMem_Free(self->client);
    for (int i = 0; i < self->n_kinds; i++)
        PyMem_Free(self->kinds[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Kernel_repr(Kernel *self) {
    (void)self;
    return PyUnicode_FromString("Kernel(...)"); /* never the key's states */
}

static PyMethodDef Kernel_methods[] = {
    {"run", (PyCFunction)Kernel_run, METH_VARARGS,
     "run(rows, leaves, start, chain, tree, anchor_seq, next_due) -> index of the first row "
     "not proven clean (len(rows) when all were); chain and tree moved past the proven "
     "rows. rows: (seq, entry, tag, type, record_id) in seq order; leaves: (idx, hash) of "
     "the stored level-0 nodes in idx order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vault.ledger._walk.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Kernel(client, key, prefix, plain_kinds): verify's compiled chain walk.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kernel_init,
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_repr = (reprfunc)Kernel_repr,
    .tp_methods = Kernel_methods,
};

/* ---- reading a range straight from SQLite -------------------------------------------- */

/* SqliteRange(path, client, start, end): the rows start <= seq < end of a log in a SQLite
 * database, read on a read-only connection of its own inside one read transaction (one
 * snapshot), with no Python object per row. run() walks them with a Kernel and returns the
 * first row the kernel cannot prove, as the 6-tuple walk_rows would give for it (the
 * range has moved past it: the Python walk takes it), or None at the end of the range.
 * Each value is converted as Python's sqlite3 module converts it. */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *entries, *leaves;
    int entry_rc, leaf_rc; /* the last sqlite3_step() result of each */
} SqliteRange;

static const char ENTRIES_SQL[] =
    "SELECT seq, entry, tag, type, record_id FROM log_entry "
    "WHERE client_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq";
static const char LEAVES_SQL[] =
    "SELECT idx, hash FROM merkle_node "
    "WHERE client_id = ?1 AND level = 0 AND idx >= ?2 AND idx < ?3 ORDER BY idx";

static PyObject *sqlite_error(sqlite3 *db) {
    PyErr_Format(PyExc_OSError, "reading the log for verify: %s",
                 db ? sqlite3_errmsg(db) : "out of memory");
    return NULL;
}

static int prepare(SqliteRange *r, const char *sql, sqlite3_stmt **stmt, const char *client,
                   Py_ssize_t client_len, long long start, long long end) {
    return sqlite3_prepare_v2(r->db, sql, -1, stmt, NULL) == SQLITE_OK &&
           sqlite3_bind_text(*stmt, 1, client, (int)client_len, SQLITE_TRANSIENT) == SQLITE_OK &&
           sqlite3_bind_int64(*stmt, 2, start) == SQLITE_OK &&
           sqlite3_bind_int64(*stmt, 3, end) == SQLITE_OK;
}

static void SqliteRange_close(SqliteRange *r) {
    sqlite3_finalize(r->entries);
    sqlite3_finalize(r->leaves);
    r->entries = r->leaves = NULL;
    if (r->db) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(r->db);
        r->db = NULL;
    }
}

static int SqliteRange_init(SqliteRange *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"path", "client", "start", "end", NULL};
    const char *path, *client;
    Py_ssize_t client_len;
    long long start, end;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ss#LL:SqliteRange", kwlist, &path, &client,
                                     &client_len, &start, &end))
        return -1;
    SqliteRange_close(self);
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(self->db, 30000) != SQLITE_OK ||
        sqlite3_exec(self->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        !prepare(self, ENTRIES_SQL, &self->entries, client, client_len, start, end) ||
        !prepare(self, LEAVES_SQL, &self->leaves, client, client_len, start, end)) {
        sqlite_error(self->db);
        SqliteRange_close(self);
        return -1;
    }
    self->entry_rc = sqlite3_step(self->entries);
    self->leaf_rc = sqlite3_step(self->leaves);
    return 0;
}

/* column i of a statement's current row, of the given type, as Python's sqlite3 module
 * gives it */
static PyObject *column(sqlite3_stmt *stmt, int i, int type) {
    switch (type) {
    case SQLITE_INTEGER:
        return PyLong_FromLongLong(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
        return PyFloat_FromDouble(sqlite3_column_double(stmt, i));
    case SQLITE_TEXT:
        return PyUnicode_DecodeUTF8((const char *)sqlite3_column_text(stmt, i),
                                    sqlite3_column_bytes(stmt, i), NULL);
    case SQLITE_BLOB: {
        const void *blob = sqlite3_column_blob(stmt, i);
        return PyBytes_FromStringAndSize(blob, sqlite3_column_bytes(stmt, i));
    }
    default:
        return Py_NewRef(Py_None);
    }
}

/* a BLOB column's bytes, or NULL for any other type */
static const unsigned char *blob(sqlite3_stmt *stmt, int i, Py_ssize_t *len) {
    if (sqlite3_column_type(stmt, i) != SQLITE_BLOB)
        return NULL;
    const unsigned char *p = sqlite3_column_blob(stmt, i);
    *len = sqlite3_column_bytes(stmt, i);
    return p ? p : (const unsigned char *)"";
}

/* the 6-tuple of the current entry row and its leaf (None when it has none) */
static PyObject *handed_back(SqliteRange *r, const int *types, int has_leaf) {
    PyObject *row = PyTuple_New(6);
    if (row == NULL)
        return NULL;
    for (int c = 0; c < 5; c++) {
        PyObject *v = column(r->entries, c, types[c]);
        if (v == NULL) {
            Py_DECREF(row);
            return NULL;
        }
        PyTuple_SET_ITEM(row, c, v);
    }
    PyObject *leaf = has_leaf ? column(r->leaves, 1, sqlite3_column_type(r->leaves, 1))
                              : Py_NewRef(Py_None);
    if (leaf == NULL) {
        Py_DECREF(row);
        return NULL;
    }
    PyTuple_SET_ITEM(row, 5, leaf);
    return row;
}

static PyObject *SqliteRange_run(SqliteRange *self, PyObject *args) {
    Kernel *k;
    PyObject *chain, *tree;
    long long anchor_seq;
    unsigned long long next_due;
    if (!PyArg_ParseTuple(args, "O!OOLK:run", &KernelType, &k, &chain, &tree, &anchor_seq,
                          &next_due))
        return NULL;
    if (self->db == NULL)
        return PyErr_Format(PyExc_ValueError, "the range is closed");
    State st;
    int loaded = load_state(chain, tree, &st), moved = 0;
    PyObject *out = NULL;
    while (self->entry_rc == SQLITE_ROW) {
        sqlite3_stmt *e = self->entries;
        /* the types first: reading a value as text or blob may convert it, after which
         * sqlite3_column_type() is undefined; each is read only as what it is */
        int types[5];
        for (int c = 0; c < 5; c++)
            types[c] = sqlite3_column_type(e, c);
        int seq_is_int = types[0] == SQLITE_INTEGER;
        long long seq = seq_is_int ? sqlite3_column_int64(e, 0) : 0;
        /* the leaves rise by idx: skip those before this seq */
        while (self->leaf_rc == SQLITE_ROW &&
               sqlite3_column_type(self->leaves, 0) == SQLITE_INTEGER &&
               sqlite3_column_int64(self->leaves, 0) < seq)
            self->leaf_rc = sqlite3_step(self->leaves);
        int has_leaf = seq_is_int && self->leaf_rc == SQLITE_ROW &&
                       sqlite3_column_type(self->leaves, 0) == SQLITE_INTEGER &&
                       sqlite3_column_int64(self->leaves, 0) == seq;
        Py_ssize_t raw_len = 0, tag_len = 0, leaf_len = 0, kind_len = 0, record_len = -1;
        const unsigned char *raw = types[1] == SQLITE_BLOB ? blob(e, 1, &raw_len) : NULL;
        const unsigned char *tag = types[2] == SQLITE_BLOB ? blob(e, 2, &tag_len) : NULL;
        const unsigned char *leaf = has_leaf ? blob(self->leaves, 1, &leaf_len) : NULL;
        int kind_text = types[3] == SQLITE_TEXT, record_type = types[4];
        const char *kind = kind_text ? (const char *)sqlite3_column_text(e, 3) : NULL;
        const char *record = NULL;
        if (kind)
            kind_len = sqlite3_column_bytes(e, 3);
        if (record_type == SQLITE_TEXT && (record = (const char *)sqlite3_column_text(e, 4)))
            record_len = sqlite3_column_bytes(e, 4);
        int ok = loaded && seq_is_int && raw && kind &&
                 (record_type == SQLITE_NULL || (record_type == SQLITE_TEXT && record)) &&
                 check(k, &st, seq, raw, raw_len, tag, tag_len, kind, kind_len, record,
                       record_len, leaf, leaf_len, anchor_seq, next_due);
        if (!ok) {
            out = handed_back(self, types, has_leaf);
            self->entry_rc = sqlite3_step(e);
            break;
        }
        moved = 1;
        self->entry_rc = sqlite3_step(e);
    }
    if (out == NULL && !PyErr_Occurred()) {
        if (self->entry_rc != SQLITE_DONE && self->entry_rc != SQLITE_ROW)
            sqlite_error(self->db);
        else if (self->leaf_rc != SQLITE_DONE && self->leaf_rc != SQLITE_ROW)
            sqlite_error(self->db);
    }
    if (moved && store_state(chain, tree, &st) != 0) {
        Py_XDECREF(out);
        return NULL;
    }
    if (PyErr_Occurred()) {
        Py_XDECREF(out);
        return NULL;
    }
    return out ? out : Py_NewRef(Py_None);
}

static PyObject *SqliteRange_close_method(SqliteRange *self, PyObject *unused) {
    (void)unused;
    SqliteRange_close(self);
    Py_RETURN_NONE;
}

static void SqliteRange_dealloc(SqliteRange *self) {
    SqliteRange_close(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef SqliteRange_methods[] = {
    {"run", (PyCFunction)SqliteRange_run, METH_VARARGS,
     "run(kernel, chain, tree, anchor_seq, next_due) -> the next row the kernel cannot prove "
     "(seq, entry, tag, type, record_id, leaf), or None at the end of the range."},
    {"close", (PyCFunction)SqliteRange_close_method, METH_NOARGS, "End the read and close."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SqliteRangeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vault.ledger._walk.SqliteRange",
    .tp_basicsize = sizeof(SqliteRange),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SqliteRange(path, client, start, end): a log range read straight from SQLite.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SqliteRange_init,
    .tp_dealloc = (destructor)SqliteRange_dealloc,
    .tp_methods = SqliteRange_methods,
};

static struct PyModuleDef walk_module = {
    PyModuleDef_HEAD_INIT, "_walk", "verify's compiled chain walk (see _walk.c)", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__walk(void) {
    init_plain();
    if (PyType_Ready(&KernelType) < 0 || PyType_Ready(&SqliteRangeType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&walk_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SqliteRangeType);
    if (PyModule_AddObject(m, "SqliteRange", (PyObject *)&SqliteRangeType) < 0) {
        Py_DECREF(&SqliteRangeType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
