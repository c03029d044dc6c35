/* server._speedups: WordSet, the words of an app's messages for its next word block.
 *
 * WordSet(split) -> a set of words, kept as UTF-8 bytes in one buffer and an open-addressing
 * table (no Python object per word): the words of an app's messages for its next word block
 * (server._pg_writer). A Python set of str (server.fulltext.PyWordSet) costs ~1 us a log (10
 * words) on the event loop, this 0.36 (bench/word_set_cost.py; docs/benchmarks.md, "PostgreSQL:
 * word blocks in C").
 *
 * add_texts(texts): adds the words of each text. An ASCII text is split here, as
 *     server.fulltext.split_words splits one (lower-cased runs of letters and digits); any other
 *     is given to `split` (server.fulltext.split_words), whose words are added.
 * copy(): a new WordSet with the same words.
 * text(max_chars): the words of at most max_chars characters, each once, joined by one space
 *     (in no particular order). len(): how many words.
 *
 * Words are hashed as Python hashes str and bytes (SipHash, keyed per process), so messages
 * made to collide cannot turn the table's probes quadratic. Its size is bounded by what the
 * writer's queue holds (INGEST_QUEUE_MAX_RECORDS): the writer takes the set with each commit.
 */
#include "speedups.h"

#include <string.h>

#if PY_VERSION_HEX >= 0x030E0000
#define HASH_BYTES(p, n) Py_HashBuffer((p), (n))
#else
#define HASH_BYTES(p, n) _Py_HashBytes((p), (n))
#endif

typedef struct {
    Py_hash_t hash;
    size_t offset, len;  /* len 0: an empty slot (a word is never empty) */
} Slot;

typedef struct {
    PyObject_HEAD
    PyObject *split;
    char *words;  /* every word's bytes, one after the other */
    size_t words_len, words_cap;
    Slot *slots;
    size_t mask, used;  /* mask + 1 slots, a power of two, at most half used */
    int non_ascii;  /* a word is not ASCII: text() decodes UTF-8 */
    char *scratch;  /* a text lower-cased */
    size_t scratch_cap;
} WordSet;

static PyTypeObject WordSetType;

static int wordset_init_table(WordSet *ws, size_t size) {
    Slot *slots = PyMem_Calloc(size, sizeof(Slot));
    if (slots == NULL) { PyErr_NoMemory(); return -1; }
    PyMem_Free(ws->slots);
    ws->slots = slots;
    ws->mask = size - 1;
    ws->used = 0;
    return 0;
}

static void place(Slot *slots, size_t mask, Slot s) {
    size_t i = (size_t)s.hash & mask;
    while (slots[i].len) i = (i + 1) & mask;
    slots[i] = s;
}

static int grow_table(WordSet *ws) {
    size_t size = (ws->mask + 1) * 2;
    Slot *slots = PyMem_Calloc(size, sizeof(Slot));
    if (slots == NULL) { PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i <= ws->mask; i++)
        if (ws->slots[i].len) place(slots, size - 1, ws->slots[i]);
    PyMem_Free(ws->slots);
    ws->slots = slots;
    ws->mask = size - 1;
    return 0;
}

static int add_word(WordSet *ws, const char *w, size_t n) {
    Py_hash_t h = HASH_BYTES(w, (Py_ssize_t)n);
    size_t i = (size_t)h & ws->mask;
    for (; ws->slots[i].len; i = (i + 1) & ws->mask) {
        Slot *s = &ws->slots[i];
        if (s->hash == h && s->len == n && memcmp(ws->words + s->offset, w, n) == 0) return 0;
    }
    if (ws->words_len + n > ws->words_cap) {
        size_t cap = ws->words_cap ? ws->words_cap : 16384;
        while (cap < ws->words_len + n) cap *= 2;
        char *words = PyMem_Realloc(ws->words, cap);
        if (words == NULL) { PyErr_NoMemory(); return -1; }
        ws->words = words;
        ws->words_cap = cap;
    }
    memcpy(ws->words + ws->words_len, w, n);
    Slot s = {h, ws->words_len, n};
    ws->words_len += n;
    ws->slots[i] = s;
    if (++ws->used * 2 > ws->mask + 1 && grow_table(ws)) return -1;
    return 0;
}

/* ASCII letters and digits lower-cased; 0 for every other byte (a separator). */
static unsigned char WORD_BYTE[128];

static int add_ascii_text(WordSet *ws, PyObject *text) {
    size_t n = (size_t)PyUnicode_GET_LENGTH(text);
    if (n > ws->scratch_cap) {
        char *scratch = PyMem_Realloc(ws->scratch, n);
        if (scratch == NULL) { PyErr_NoMemory(); return -1; }
        ws->scratch = scratch;
        ws->scratch_cap = n;
    }
    const unsigned char *in = PyUnicode_1BYTE_DATA(text);
    char *b = ws->scratch;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = WORD_BYTE[in[i]];  /* in[i] < 128: an ASCII text */
        b[i] = (char)c;
        if (c == 0) {
            if (i > start && add_word(ws, b + start, i - start)) return -1;
            start = i + 1;
        }
    }
    if (n > start && add_word(ws, b + start, n - start)) return -1;
    return 0;
}

static int add_split_text(WordSet *ws, PyObject *text) {
    PyObject *words = PyObject_CallOneArg(ws->split, text);
    if (words == NULL) return -1;
    if (!PyList_Check(words)) {
        Py_DECREF(words);
        PyErr_SetString(PyExc_TypeError, "WordSet: split must return a list of str");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        PyObject *word = PyList_GET_ITEM(words, i);
        Py_ssize_t n;
        const char *w = PyUnicode_Check(word) ? PyUnicode_AsUTF8AndSize(word, &n) : NULL;
        if (w == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "WordSet: split must return a list of str");
            Py_DECREF(words);
            return -1;
        }
        if (n == 0) continue;
        if (!PyUnicode_IS_ASCII(word)) ws->non_ascii = 1;
        if (add_word(ws, w, (size_t)n)) { Py_DECREF(words); return -1; }
    }
    Py_DECREF(words);
    return 0;
}

static PyObject *wordset_add_texts(WordSet *ws, PyObject *texts) {
    PyObject *seq = PySequence_Fast(texts, "add_texts(texts): a list of str");
    if (seq == NULL) return NULL;
    /* A list of the texts is held (seq), and add_split_text may run Python code (split):
     * take each item's reference before that can happen. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(text);
        int failed;
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "add_texts: item %zd is %.80s, not str", i, Py_TYPE(text)->tp_name);
            failed = 1;
        } else {
            failed = PyUnicode_IS_ASCII(text) ? add_ascii_text(ws, text) : add_split_text(ws, text);
        }
        Py_DECREF(text);
        if (failed) { Py_DECREF(seq); return NULL; }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static int add_words_of(WordSet *ws, const WordSet *o) {  /* o's words into ws (o != ws) */
    for (size_t i = 0; i <= o->mask; i++)
        if (o->slots[i].len && add_word(ws, o->words + o->slots[i].offset, o->slots[i].len)) return -1;
    ws->non_ascii |= o->non_ascii;
    return 0;
}

static PyObject *wordset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);

static PyObject *wordset_copy(WordSet *ws, PyObject *Py_UNUSED(ignored)) {
    PyObject *args = PyTuple_Pack(1, ws->split);
    if (args == NULL) return NULL;
    WordSet *c = (WordSet *)wordset_new(Py_TYPE(ws), args, NULL);
    Py_DECREF(args);
    if (c == NULL) return NULL;
    if (add_words_of(c, ws)) { Py_DECREF(c); return NULL; }
    return (PyObject *)c;
}

static size_t utf8_chars(const char *w, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)w[i] & 0xC0) != 0x80;
    return chars;
}

static PyObject *wordset_text(WordSet *ws, PyObject *arg) {
    Py_ssize_t max_chars = PyLong_AsSsize_t(arg);
    if (max_chars == -1 && PyErr_Occurred()) return NULL;
    size_t total = 0;
    for (size_t i = 0; i <= ws->mask; i++) {
        Slot *s = &ws->slots[i];
        if (s->len) total += s->len + 1;
    }
    char *buf = PyMem_Malloc(total ? total : 1);
    if (buf == NULL) return PyErr_NoMemory();
    size_t len = 0;
    for (size_t i = 0; i <= ws->mask; i++) {
        Slot *s = &ws->slots[i];
        if (!s->len) continue;
        const char *w = ws->words + s->offset;
        if (s->len > (size_t)max_chars && (!ws->non_ascii || utf8_chars(w, s->len) > (size_t)max_chars)) continue;
        if (len) buf[len++] = ' ';
        memcpy(buf + len, w, s->len);
        len += s->len;
    }
    PyObject *text;
    if (ws->non_ascii) {
        text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "strict");
    } else {
        text = PyUnicode_New((Py_ssize_t)len, 127);
        if (text != NULL) memcpy(PyUnicode_1BYTE_DATA(text), buf, len);
    }
    PyMem_Free(buf);
    return text;
}

static Py_ssize_t wordset_len(WordSet *ws) { return (Py_ssize_t)ws->used; }

static PyObject *wordset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *split;
    static char *names[] = {"split", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:WordSet", names, &split)) return NULL;
    if (!PyCallable_Check(split)) {
        PyErr_SetString(PyExc_TypeError, "WordSet(split): split must be callable");
        return NULL;
    }
    WordSet *ws = (WordSet *)type->tp_alloc(type, 0);
    if (ws == NULL) return NULL;
    ws->split = Py_NewRef(split);
    if (wordset_init_table(ws, 1024)) { Py_DECREF(ws); return NULL; }
    return (PyObject *)ws;
}

static void wordset_dealloc(WordSet *ws) {
    PyObject_GC_UnTrack(ws);
    Py_CLEAR(ws->split);
    PyMem_Free(ws->words);
    PyMem_Free(ws->slots);
    PyMem_Free(ws->scratch);
    Py_TYPE(ws)->tp_free((PyObject *)ws);
}

static int wordset_traverse(WordSet *ws, visitproc visit, void *arg) {
    Py_VISIT(ws->split);
    return 0;
}

static int wordset_clear(WordSet *ws) {
    Py_CLEAR(ws->split);
    return 0;
}

static PyMethodDef wordset_methods[] = {
    {"add_texts", (PyCFunction)wordset_add_texts, METH_O, "Add the words of each text."},
    {"copy", (PyCFunction)wordset_copy, METH_NOARGS, "A new WordSet with the same words."},
    {"text", (PyCFunction)wordset_text, METH_O, "The words of at most max_chars characters, joined by one space."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods wordset_as_sequence = {.sq_length = (lenfunc)wordset_len};

static PyTypeObject WordSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "server._speedups.WordSet",
    .tp_basicsize = sizeof(WordSet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "WordSet(split): the distinct words of texts (see server/_c/word_set.c).",
    .tp_new = wordset_new,
    .tp_dealloc = (destructor)wordset_dealloc,
    .tp_traverse = (traverseproc)wordset_traverse,
    .tp_clear = (inquiry)wordset_clear,
    .tp_methods = wordset_methods,
    .tp_as_sequence = &wordset_as_sequence,
};

int speedups_word_set_add_type(PyObject *module) {
    for (int c = 0; c < 128; c++)
        WORD_BYTE[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : c >= 'A' && c <= 'Z' ? c | 0x20 : 0);
    if (PyType_Ready(&WordSetType) < 0) return -1;
    return PyModule_AddObjectRef(module, "WordSet", (PyObject *)&WordSetType);
}
