/*
 * flbhost - a small stand-in for Fluent Bit that loads a Go output plugin
 * (a -buildmode=c-shared .so) and drives it the way Fluent Bit's Go proxy does.
 *
 * What it mirrors (Fluent Bit v5.1.1; see /work/shared/notes/fluent-bit-go-proxy.md):
 *   - src/flb_plugin_proxy.c  flb_plugin_proxy_create / _register: dlopen(RTLD_LAZY),
 *     FLBPluginPreRegister(hot_reloading=0), FLBPluginRegister(def) with a calloc'd
 *     def (type 0), acceptance only for type == 2 (output) && proxy == 11 (Go);
 *     per-call dlsym of FLBPluginOutputPreRun / FLBPluginOutputPreExit /
 *     FLBPluginUnregister; flush return codes other than 0/1/2 become FLB_ERROR.
 *   - src/proxy/go/go.c  symbol lookup at registration; before each Init the
 *     plugin struct's api / o_ins / context are overwritten for the instance;
 *     Init fails iff rc <= 0; each flush gets a malloc'd NUL-terminated copy of
 *     the tag, freed right after; FLBPluginFlushCtx preferred over FLBPluginFlush,
 *     FLBPluginExitCtx over FLBPluginExit.
 *   - src/flb_output.c  flb_output_set_property (${VAR} expansion, empty value
 *     stored as NULL, keys consumed by the core are invisible to the plugin),
 *     flb_kv_get_key_value lookup (case-insensitive, exact length, first match),
 *     retry_limit parsing, flb_output_log_check (TRUE iff ins->log_level >= level).
 *   - src/flb_engine.c / flb_task.c  retry accounting: a chunk that keeps getting
 *     FLB_RETRY is called at most 1 + retry_limit times; 0-record chunks are
 *     never flushed; workers N => flushes of one instance on N threads.
 *   - src/flb_log.c  "[YYYY/MM/DD HH:MM:SS.mmm] [%5s] msg\n" on stderr.
 *
 * Struct layout facts copied (LP64):
 *   struct flb_plugin_proxy_def      { int type@0; int proxy@4; int flags@8;
 *                                      char *name@16; char *description@24;
 *                                      int event_type@32; void *config_map@40; } = 48
 *   struct flbgo_output_plugin       { char *name@0; void *api@8; void *o_ins@16;
 *                                      struct flb_plugin_proxy_context *context@24;
 *                                      cb_init@32, cb_flush@40, cb_flush_ctx@48,
 *                                      cb_exit@56, cb_exit_ctx@64 } = 72
 *   struct flb_plugin_proxy_context  { void *remote_context@0; void *proxy@8; } = 16
 *   struct flb_api                   { output_get_property@0, input_get_property@8,
 *                                      output_get_cmt_instance@16, input_get_cmt_instance@24,
 *                                      log_print@32, input_log_check@40,
 *                                      output_log_check@48, custom_get_property@56,
 *                                      custom_log_check@64 }
 *
 * Not reproduced: libco coroutines and their small stacks, Fluent Bit's signal
 * handlers, the scheduler's back-off (use -d), hot reload, daemon fork.
 * Fluent Bit frees its flbgo_output_plugin when an Init fails; this host keeps it.
 *
 * Build: cc -O2 -g -Wall -Wextra -o test/host/flbhost test/host/flbhost.c -ldl -lpthread
 * Usage: see usage() below.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- Fluent Bit constants ------------------------------------------------ */

#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2
#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11
#define FLB_LOG_OFF 0
#define FLB_LOG_ERROR 1
#define FLB_LOG_WARN 2
#define FLB_LOG_INFO 3
#define FLB_LOG_DEBUG 4
#define FLB_LOG_TRACE 5
#define RETRY_UNLIMITED (-1)
#define RETRY_NONE 0
#define MAX_LINE (64L * 1024 * 1024)
#define EXIT_USAGE 2
#define EXIT_STARTUP 255

/* ---- structs crossing the boundary (layouts per the header comment) ----- */

struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
    void *config_map;
};

struct flb_plugin_proxy_context {
    void *remote_context;
    void *proxy;
};

struct flbgo_output_plugin {
    char *name;
    void *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
    int (*cb_init)(struct flbgo_output_plugin *);
    int (*cb_flush)(const void *, size_t, const char *);
    int (*cb_flush_ctx)(void *, const void *, size_t, char *);
    int (*cb_exit)(void);
    int (*cb_exit_ctx)(void *);
};

struct instance;

struct flb_api {
    const char *(*output_get_property)(const char *, struct instance *);
    const char *(*input_get_property)(const char *, void *);
    void *(*output_get_cmt_instance)(struct instance *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(struct instance *, int);
    const char *(*custom_get_property)(const char *, void *);
    int (*custom_log_check)(void *, int);
};

_Static_assert(sizeof(struct flb_plugin_proxy_def) == 48, "proxy_def size");
_Static_assert(offsetof(struct flb_plugin_proxy_def, description) == 24, "description");
_Static_assert(offsetof(struct flb_plugin_proxy_def, event_type) == 32, "event_type");
_Static_assert(sizeof(struct flbgo_output_plugin) == 72, "flbgo_output_plugin size");
_Static_assert(offsetof(struct flbgo_output_plugin, context) == 24, "context");
_Static_assert(offsetof(struct flbgo_output_plugin, cb_exit_ctx) == 64, "cb_exit_ctx");
_Static_assert(sizeof(struct flb_plugin_proxy_context) == 16, "proxy_context size");
_Static_assert(offsetof(struct flb_api, log_print) == 32, "log_print");
_Static_assert(offsetof(struct flb_api, output_log_check) == 48, "output_log_check");

/* ---- host state ----------------------------------------------------------- */

struct prop {
    char *key;
    char *val; /* NULL when the value is empty */
};

struct task;

struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task *ring[4];
    int head, count, closed;
    pthread_t thread;
};

struct instance {
    int idx;
    const char *file;
    struct prop *props;
    int nprops;
    int log_level;
    int retry_limit;
    int workers;
    int init_rc;
    int init_state; /* 0 never ran, 1 ok, -1 failed */
    struct flb_plugin_proxy_context *ctx;
    struct wqueue *queues;
    int next_queue;
};

struct batch { /* outcome of one tail action */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long pending, ok, retry, error, dropped;
};

struct task {
    struct instance *ins;
    char *tag;
    unsigned char *data;
    size_t len;
    long records;
    const char *label; /* file name */
    long chunk;        /* tail chunk number, -1 for a flush action */
    struct batch *batch;
};

static struct {
    void *dl;
    struct flb_plugin_proxy_def *def;
    struct flbgo_output_plugin plugin;
    struct flb_api api;
    int (*pre_run)(int);
    void (*pre_exit)(int);
    void (*unregister)(struct flb_plugin_proxy_def *);
    struct instance *ins;
    int nins;
    int retry_limit;
    long delay_ms;
    int workers;
    int quiet;
    int log_level;
    pthread_mutex_t out_mu;
    long chunks, skipped, flushes, ok, retry, error, dropped, ok_chunks;
} H = {.retry_limit = 1, .log_level = FLB_LOG_INFO, .out_mu = PTHREAD_MUTEX_INITIALIZER};

static __thread int worker_id = -1;

/* ---- output helpers ------------------------------------------------------- */

static void out_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_line(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&H.out_mu);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&H.out_mu);
}

/* q() quotes a value for a key=value line when needed (space, quote, backslash,
 * control characters or empty). Returns a malloc'd string. */
static char *q(const char *s)
{
    size_t n = s ? strlen(s) : 0, i;
    int need = (s == NULL || n == 0);
    char *r, *p;
    for (i = 0; i < n && !need; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f) {
            need = 1;
        }
    }
    if (!need) {
        return strdup(s);
    }
    r = p = malloc(n * 4 + 3);
    *p++ = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        }
        else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        }
        else if (c < ' ' || c == 0x7f) {
            p += sprintf(p, "\\x%02x", c);
        }
        else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    *p = '\0';
    return r;
}

static const char *level_title(int level)
{
    switch (level) {
    case FLB_LOG_ERROR: return "error";
    case FLB_LOG_WARN: return "warn";
    case FLB_LOG_INFO: return "info";
    case FLB_LOG_DEBUG: return "debug";
    case FLB_LOG_TRACE: return "trace";
    default: return "help";
    }
}

static void vlog_print(int level, const char *fmt, va_list ap)
{
    char msg[4096];
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = snprintf(msg, sizeof(msg), "[%04d/%02d/%02d %02d:%02d:%02d.%03ld] [%5s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, level_title(level));
    vsnprintf(msg + n, sizeof(msg) - n - 1, fmt, ap);
    strcat(msg, "\n");
    fputs(msg, stderr);
}

/* api->log_print, as flb_log_print: file and line are not printed. */
static void api_log_print(int level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    (void)file;
    (void)line;
    va_start(ap, fmt);
    vlog_print(level, fmt, ap);
    va_end(ap);
}

static void flb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The host's own messages, filtered by the service log level (-l). */
static void flb_log(int level, const char *fmt, ...)
{
    va_list ap;
    if (level > H.log_level) {
        return;
    }
    va_start(ap, fmt);
    vlog_print(level, fmt, ap);
    va_end(ap);
}

static void usage(const char *why)
{
    if (why) {
        fprintf(stderr, "flbhost: %s\n", why);
    }
    fprintf(stderr,
            "usage: flbhost -p PLUGIN.so [-r LIMIT] [-d MS] [-w N] [-l LEVEL] [-q] [--rusage]\n"
            "               -i PROPS_FILE [-i PROPS_FILE ...] ACTION...\n"
            "  -r LIMIT   retries per chunk on FLB_RETRY (default 1, -1 no limit, 0 none)\n"
            "  -d MS      delay between retries (default 0)\n"
            "  -w N       flush threads per instance (default 0 = engine thread)\n"
            "  -l LEVEL   service log level: off error warn info debug trace (default info);\n"
            "             the default of each instance's log_level, as in Fluent Bit\n"
            "  -q         no per-call flush lines for tail chunks\n"
            "  --rusage   print resource usage at the end\n"
            "  -i FILE    one [OUTPUT] instance from 'Key Value' lines\n"
            "actions:\n"
            "  flush IDX TAG FILE\n"
            "  tail IDX TAG LOGFILE [N]\n"
            "  sleep MS\n");
    exit(EXIT_USAGE);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "flbhost: out of memory\n");
        exit(EXIT_USAGE);
    }
    return p;
}

static long parse_long(const char *s, const char *what)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        char buf[256];
        snprintf(buf, sizeof(buf), "bad %s: '%s'", what, s);
        usage(buf);
    }
    return v;
}

/* ---- properties ------------------------------------------------------------ */

static int prefix_ci(const char *k, const char *p)
{
    return strncasecmp(k, p, strlen(p)) == 0;
}

/* Keys Fluent Bit's core consumes (flb_output_set_property) plus 'name'. */
static int core_key(const char *k)
{
    static const char *const exact[] = {
        "name", "match", "match_regex", "alias", "log_level", "log_suppress_interval",
        "host", "port", "ipv6", "retry_limit", "tls", "storage.total_limit_size",
        "workers", NULL};
    int i;
    for (i = 0; exact[i]; i++) {
        if (strcasecmp(k, exact[i]) == 0) {
            return 1;
        }
    }
    return prefix_ci(k, "net.") || prefix_ci(k, "tls.") || prefix_ci(k, "oauth2");
}

/* ${VAR} expansion from the environment; an unset variable becomes "". */
static char *expand_env(const char *v)
{
    size_t cap = strlen(v) + 1, n = 0;
    char *r = xmalloc(cap);
    const char *p = v;
    while (*p) {
        const char *add = p;
        size_t addn = 1;
        char *var = NULL;
        if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p + 2, '}');
            if (e) {
                var = strndup(p + 2, (size_t)(e - p - 2));
                add = getenv(var);
                if (!add) {
                    add = "";
                }
                addn = strlen(add);
                p = e + 1;
            }
            else {
                p++;
            }
        }
        else {
            p++;
        }
        if (n + addn + 1 > cap) {
            cap = (n + addn + 1) * 2;
            r = realloc(r, cap);
        }
        memcpy(r + n, add, addn);
        n += addn;
        free(var);
    }
    r[n] = '\0';
    return r;
}

static int parse_log_level(const char *v)
{
    if (!strcasecmp(v, "off")) return FLB_LOG_OFF;
    if (!strcasecmp(v, "error")) return FLB_LOG_ERROR;
    if (!strcasecmp(v, "warn") || !strcasecmp(v, "warning")) return FLB_LOG_WARN;
    if (!strcasecmp(v, "info")) return FLB_LOG_INFO;
    if (!strcasecmp(v, "debug")) return FLB_LOG_DEBUG;
    if (!strcasecmp(v, "trace")) return FLB_LOG_TRACE;
    return -1;
}

static int parse_retry_limit(const char *v)
{
    int n;
    if (!v) return 1;
    if (!strcasecmp(v, "no_limits") || !strcasecmp(v, "false") || !strcasecmp(v, "off")) {
        return RETRY_UNLIMITED;
    }
    if (!strcasecmp(v, "no_retries")) return RETRY_NONE;
    n = atoi(v);
    if (n <= 0) {
        flb_log(FLB_LOG_WARN, "[config] invalid retry_limit. set default.");
        n = 1;
    }
    return n;
}

static void load_props(struct instance *ins)
{
    FILE *f = fopen(ins->file, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (!f) {
        fprintf(stderr, "flbhost: cannot open props file %s: %s\n", ins->file, strerror(errno));
        exit(EXIT_USAGE);
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *k = line, *v, *e;
        while (n > 0 && isspace((unsigned char)line[n - 1])) {
            line[--n] = '\0';
        }
        while (isspace((unsigned char)*k)) k++;
        if (*k == '\0' || *k == '#' || *k == '[') {
            continue;
        }
        for (e = k; *e && !isspace((unsigned char)*e); e++) {
        }
        v = e;
        while (isspace((unsigned char)*v)) v++;
        *e = '\0';
        v = expand_env(v);
        if (*v == '\0') {
            free(v);
            v = NULL;
        }
        if (!strcasecmp(k, "log_level") && v) {
            int l = parse_log_level(v);
            if (l < 0) {
                fprintf(stderr, "flbhost: %s: invalid log_level '%s'\n", ins->file, v);
                exit(EXIT_USAGE);
            }
            ins->log_level = l;
        }
        else if (!strcasecmp(k, "retry_limit")) {
            ins->retry_limit = parse_retry_limit(v);
        }
        else if (!strcasecmp(k, "workers") && v) {
            ins->workers = atoi(v);
        }
        ins->props = realloc(ins->props, sizeof(struct prop) * (ins->nprops + 1));
        ins->props[ins->nprops].key = strdup(k);
        ins->props[ins->nprops].val = v;
        ins->nprops++;
    }
    free(line);
    fclose(f);
}

/* api->output_get_property, as flb_output_get_property/flb_kv_get_key_value. */
static const char *api_output_get_property(const char *key, struct instance *ins)
{
    size_t len;
    int i;
    if (!key || !ins) {
        return NULL;
    }
    len = strlen(key);
    for (i = 0; i < ins->nprops; i++) {
        const char *k = ins->props[i].key;
        if (strlen(k) == len && strncasecmp(k, key, len) == 0) {
            return core_key(k) ? NULL : ins->props[i].val;
        }
    }
    return NULL;
}

static int api_output_log_check(struct instance *ins, int level)
{
    return ins && ins->log_level >= level;
}

static const char *api_null_property(const char *key, void *ins)
{
    (void)key;
    (void)ins;
    return NULL;
}

static void *api_null_output_cmt(struct instance *ins)
{
    (void)ins;
    return NULL;
}

static void *api_null_cmt(void *ins)
{
    (void)ins;
    return NULL;
}

static int api_null_log_check(void *ins, int level)
{
    (void)ins;
    (void)level;
    return 0;
}

/* ---- msgpack -------------------------------------------------------------- */

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Counts complete top-level msgpack objects (records) in buf. */
static long count_objects(const unsigned char *buf, size_t len)
{
    size_t off = 0;
    long count = 0;
    while (off < len) {
        uint64_t pending = 1;
        while (pending > 0) {
            unsigned char c;
            uint64_t skip = 0, items = 0;
            int hdr = 1;
            if (off >= len) return count;
            c = buf[off];
            if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            }
            else if ((c & 0xf0) == 0x80) items = 2 * (uint64_t)(c & 0x0f);
            else if ((c & 0xf0) == 0x90) items = c & 0x0f;
            else if ((c & 0xe0) == 0xa0) skip = c & 0x1f;
            else {
                int lb;
                switch (c) {
                case 0xc4: case 0xc7: case 0xd9: lb = 1; break;
                case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: lb = 2; break;
                case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf: lb = 4; break;
                case 0xc1: return count; /* never used */
                default: lb = 0; break;
                }
                if (off + 1 + (size_t)lb > len) return count;
                hdr += lb;
                switch (c) {
                case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb:
                    skip = be(buf + off + 1, lb); break;
                case 0xc7: case 0xc8: case 0xc9: skip = be(buf + off + 1, lb) + 1; break;
                case 0xcc: case 0xd0: skip = 1; break;
                case 0xcd: case 0xd1: case 0xd4: skip = 2; break;
                case 0xd5: skip = 3; break;
                case 0xca: case 0xce: case 0xd2: skip = 4; break;
                case 0xd6: skip = 5; break;
                case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
                case 0xd7: skip = 9; break;
                case 0xd8: skip = 17; break;
                case 0xdc: case 0xdd: items = be(buf + off + 1, lb); break;
                case 0xde: case 0xdf: items = 2 * be(buf + off + 1, lb); break;
                }
            }
            if (skip > len - off - hdr) return count;
            off += hdr + skip;
            pending = pending - 1 + items;
        }
        count++;
    }
    return count;
}

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "flbhost: out of memory\n");
            exit(EXIT_USAGE);
        }
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_be(struct buf *b, uint64_t v, int n)
{
    unsigned char t[8];
    int i;
    for (i = n - 1; i >= 0; i--) {
        t[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    buf_put(b, t, (size_t)n);
}

/* One V2 record as in_tail (no parser) writes it:
 * [[EventTime(now), {}], {"log": line}]. */
static void put_tail_record(struct buf *b, const char *line, size_t n)
{
    static const unsigned char head[] = {0x92, 0x92, 0xd7, 0x00};
    static const unsigned char body[] = {0x80, 0x81, 0xa3, 'l', 'o', 'g'};
    struct timespec ts;
    unsigned char c;
    clock_gettime(CLOCK_REALTIME, &ts);
    buf_put(b, head, sizeof(head));
    buf_be(b, (uint64_t)ts.tv_sec, 4);
    buf_be(b, (uint64_t)ts.tv_nsec, 4);
    buf_put(b, body, sizeof(body));
    if (n < 32) {
        c = (unsigned char)(0xa0 | n);
        buf_put(b, &c, 1);
    }
    else if (n < 0x100) {
        c = 0xd9;
        buf_put(b, &c, 1);
        buf_be(b, n, 1);
    }
    else if (n < 0x10000) {
        c = 0xda;
        buf_put(b, &c, 1);
        buf_be(b, n, 2);
    }
    else {
        c = 0xdb;
        buf_put(b, &c, 1);
        buf_be(b, n, 4);
    }
    buf_put(b, line, n);
}

/* ---- flushing ------------------------------------------------------------- */

static long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int call_flush(struct instance *ins, const struct task *t)
{
    size_t tl = strlen(t->tag);
    char *tag = xmalloc(tl + 1);
    unsigned char *data = xmalloc(t->len);
    int rc;
    memcpy(tag, t->tag, tl + 1);
    memcpy(data, t->data, t->len);
    if (H.plugin.cb_flush_ctx) {
        rc = H.plugin.cb_flush_ctx(ins->ctx->remote_context, data, t->len, tag);
    }
    else {
        rc = H.plugin.cb_flush(data, t->len, tag);
    }
    free(data);
    free(tag);
    if (rc != FLB_OK && rc != FLB_RETRY && rc != FLB_ERROR) {
        rc = FLB_ERROR;
    }
    return rc;
}

static void chunk_label(const struct task *t, char *out, size_t n)
{
    char *tag = q(t->tag), *file = q(t->label);
    if (t->chunk >= 0) {
        snprintf(out, n, "idx=%d tag=%s file=%s chunk=%ld", t->ins->idx, tag, file, t->chunk);
    }
    else {
        snprintf(out, n, "idx=%d tag=%s file=%s", t->ins->idx, tag, file);
    }
    free(tag);
    free(file);
}

static void run_task(struct task *t)
{
    struct instance *ins = t->ins;
    char label[8192];
    long ok = 0, retry = 0, error = 0, dropped = 0, attempt = 0, calls = 0;
    const char *reason = NULL;
    int print = !(H.quiet && t->chunk >= 0);

    chunk_label(t, label, sizeof(label));
    if (t->len == 0 || t->records == 0) {
        /* output_pre_cb_flush: an empty chunk is never handed to the plugin */
        if (print) {
            out_line("flush %s bytes=%zu records=%ld attempt=0 rc=1 skipped=1 worker=%d", label,
                     t->len, t->records, worker_id);
        }
        pthread_mutex_lock(&H.out_mu);
        H.chunks++;
        H.skipped++;
        H.ok_chunks++;
        pthread_mutex_unlock(&H.out_mu);
        goto done;
    }
    for (;;) {
        long t0 = now_us();
        int rc;
        attempt++;
        rc = call_flush(ins, t);
        calls++;
        if (print || rc != FLB_OK) {
            out_line("flush %s bytes=%zu records=%ld attempt=%ld rc=%d worker=%d us=%ld", label,
                     t->len, t->records, attempt, rc, worker_id, now_us() - t0);
        }
        if (rc == FLB_OK) {
            ok++;
            if (attempt > 1) {
                flb_log(FLB_LOG_INFO, "[engine] flush chunk succeeded at retry %ld: %s",
                        attempt - 1, label);
            }
            break;
        }
        if (rc == FLB_ERROR) {
            error++;
            reason = "error";
            break;
        }
        retry++;
        if (ins->retry_limit == RETRY_NONE) {
            flb_log(FLB_LOG_WARN, "[engine] chunk is not retried (no retry config): %s", label);
            reason = "no_retries";
            break;
        }
        if (ins->retry_limit > 0 && attempt - 1 >= ins->retry_limit) {
            flb_log(FLB_LOG_ERROR, "[engine] chunk cannot be retried: %s", label);
            reason = "retries_exhausted";
            break;
        }
        flb_log(FLB_LOG_WARN, "[engine] failed to flush chunk, retry in %ld ms: %s", H.delay_ms,
                label);
        sleep_ms(H.delay_ms);
    }
    if (reason) {
        dropped = 1;
        out_line("drop %s attempts=%ld reason=%s", label, attempt, reason);
    }
    pthread_mutex_lock(&H.out_mu);
    H.chunks++;
    H.flushes += calls;
    H.ok += ok;
    H.retry += retry;
    H.error += error;
    H.dropped += dropped;
    H.ok_chunks += !dropped;
    pthread_mutex_unlock(&H.out_mu);
done:
    if (t->batch) {
        struct batch *b = t->batch;
        pthread_mutex_lock(&b->mu);
        b->ok += ok;
        b->retry += retry;
        b->error += error;
        b->dropped += dropped;
        b->pending--;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
    free(t->tag);
    free(t->data);
    free(t);
}

/* ---- workers ---------------------------------------------------------------- */

struct worker_arg {
    struct wqueue *q;
    int id;
};

static void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct wqueue *q = wa->q;
    worker_id = wa->id;
    free(wa);
    for (;;) {
        struct task *t;
        pthread_mutex_lock(&q->mu);
        while (q->count == 0 && !q->closed) {
            pthread_cond_wait(&q->cv, &q->mu);
        }
        if (q->count == 0) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        t = q->ring[q->head];
        q->head = (q->head + 1) % 4;
        q->count--;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        run_task(t);
    }
}

static void start_workers(struct instance *ins)
{
    int i;
    if (ins->workers <= 0) {
        return;
    }
    ins->queues = calloc((size_t)ins->workers, sizeof(struct wqueue));
    for (i = 0; i < ins->workers; i++) {
        struct wqueue *q = &ins->queues[i];
        struct worker_arg *wa = xmalloc(sizeof(*wa));
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
        wa->q = q;
        wa->id = i;
        if (pthread_create(&q->thread, NULL, worker_main, wa) != 0) {
            fprintf(stderr, "flbhost: pthread_create failed\n");
            exit(EXIT_USAGE);
        }
        flb_log(FLB_LOG_INFO, "[output:%s:%s.%d] worker #%d started", H.plugin.name,
                H.plugin.name, ins->idx, i);
    }
}

static void stop_workers(struct instance *ins)
{
    int i;
    for (i = 0; i < ins->workers && ins->queues; i++) {
        struct wqueue *q = &ins->queues[i];
        pthread_mutex_lock(&q->mu);
        q->closed = 1;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        flb_log(FLB_LOG_INFO, "[output:%s:%s.%d] thread worker #%d stopping...", H.plugin.name,
                H.plugin.name, ins->idx, i);
    }
    free(ins->queues);
    ins->queues = NULL;
}

static void dispatch(struct task *t)
{
    struct instance *ins = t->ins;
    struct wqueue *q;
    if (!ins->queues) {
        run_task(t);
        return;
    }
    q = &ins->queues[ins->next_queue];
    ins->next_queue = (ins->next_queue + 1) % ins->workers;
    pthread_mutex_lock(&q->mu);
    while (q->count == 4) {
        pthread_cond_wait(&q->cv, &q->mu);
    }
    q->ring[(q->head + q->count) % 4] = t;
    q->count++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static struct task *new_task(struct instance *ins, const char *tag, const char *label,
                             unsigned char *data, size_t len, long records, long chunk,
                             struct batch *b)
{
    struct task *t = xmalloc(sizeof(*t));
    t->ins = ins;
    t->tag = strdup(tag);
    t->label = label;
    t->data = data;
    t->len = len;
    t->records = records;
    t->chunk = chunk;
    t->batch = b;
    return t;
}

/* ---- actions ----------------------------------------------------------------- */

static struct instance *get_instance(const char *s)
{
    long i = parse_long(s, "instance index");
    if (i < 0 || i >= H.nins) {
        usage("instance index out of range");
    }
    return &H.ins[i];
}

static void act_flush(struct instance *ins, const char *tag, const char *file)
{
    FILE *f = fopen(file, "rb");
    struct buf b = {0};
    unsigned char tmp[65536];
    size_t n;
    if (!f) {
        fprintf(stderr, "flbhost: cannot open chunk %s: %s\n", file, strerror(errno));
        exit(EXIT_USAGE);
    }
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        buf_put(&b, tmp, n);
    }
    fclose(f);
    dispatch(new_task(ins, tag, file, b.p, b.len, count_objects(b.p, b.len), -1, NULL));
}

static void act_tail(struct instance *ins, const char *tag, const char *file, long per_chunk)
{
    FILE *f = fopen(file, "rb");
    char *line = NULL, *qt, *qf;
    size_t cap = 0;
    ssize_t n;
    long chunks = 0, records = 0, in_chunk = 0;
    struct buf b = {0};
    struct batch bt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

    if (!f) {
        fprintf(stderr, "flbhost: cannot open log file %s: %s\n", file, strerror(errno));
        exit(EXIT_USAGE);
    }
    if (per_chunk <= 0) {
        usage("tail: N must be > 0");
    }
    for (;;) {
        n = getline(&line, &cap, f);
        if (n >= 0) {
            if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
            if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
            if (n > MAX_LINE) {
                fprintf(stderr, "flbhost: %s: line longer than 64 MiB\n", file);
                exit(EXIT_USAGE);
            }
            if (n == 0) continue;
            put_tail_record(&b, line, (size_t)n);
            in_chunk++;
            records++;
        }
        if ((n < 0 && in_chunk > 0) || in_chunk == per_chunk) {
            pthread_mutex_lock(&bt.mu);
            bt.pending++;
            pthread_mutex_unlock(&bt.mu);
            dispatch(new_task(ins, tag, file, b.p, b.len, in_chunk, chunks, &bt));
            chunks++;
            in_chunk = 0;
            memset(&b, 0, sizeof(b));
        }
        if (n < 0) break;
    }
    free(line);
    fclose(f);
    pthread_mutex_lock(&bt.mu);
    while (bt.pending > 0) {
        pthread_cond_wait(&bt.cv, &bt.mu);
    }
    pthread_mutex_unlock(&bt.mu);
    qt = q(tag);
    qf = q(file);
    out_line("tail idx=%d tag=%s file=%s chunks=%ld records=%ld ok=%ld retry=%ld error=%ld "
             "dropped=%ld",
             ins->idx, qt, qf, chunks, records, bt.ok, bt.retry, bt.error, bt.dropped);
    free(qt);
    free(qf);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void *sym(const char *name)
{
    void *s;
    dlerror();
    s = dlsym(H.dl, name);
    return dlerror() ? NULL : s;
}

static void shutdown_instances(int failed_idx)
{
    int i;
    for (i = 0; i < H.nins; i++) {
        struct instance *ins = &H.ins[i];
        int rc = 0;
        if (i == failed_idx) {
            /* Fluent Bit destroys the failed instance without calling its exit */
            out_line("exit idx=%d skipped=init_failed", i);
            continue;
        }
        stop_workers(ins);
        if (H.pre_exit) {
            H.pre_exit(0);
            out_line("preexit idx=%d", i);
        }
        flb_log(FLB_LOG_DEBUG, "[GO] running exit callback");
        if (H.plugin.cb_exit_ctx) {
            rc = H.plugin.cb_exit_ctx(ins->ctx->remote_context);
            out_line("exit idx=%d rc=%d ctx=%d", i, rc, ins->ctx->remote_context != NULL);
        }
        else if (H.plugin.cb_exit) {
            rc = H.plugin.cb_exit();
            out_line("exit idx=%d rc=%d legacy=1", i, rc);
        }
        else {
            out_line("exit idx=%d missing=1", i);
        }
        free(ins->ctx);
        ins->ctx = NULL;
    }
    if (H.unregister) {
        H.unregister(H.def);
        out_line("unregister");
    }
    else {
        out_line("unregister missing=1");
    }
    dlclose(H.dl);
}

static int load_plugin(const char *path)
{
    int (*pre_register)(int);
    int (*reg)(struct flb_plugin_proxy_def *);
    int rc;
    char *qn, *qd;

    H.dl = dlopen(path, RTLD_LAZY);
    if (!H.dl) {
        flb_log(FLB_LOG_ERROR, "[proxy] error opening plugin %s: '%s'", path, dlerror());
        out_line("dlopen ok=0");
        return -1;
    }
    out_line("dlopen ok=1");
    H.def = calloc(1, sizeof(struct flb_plugin_proxy_def));
    H.def->type = 0;
    pre_register = (int (*)(int))sym("FLBPluginPreRegister");
    if (pre_register) {
        rc = pre_register(0);
        out_line("preregister rc=%d", rc);
        if (rc == -1) {
            return -1;
        }
    }
    reg = (int (*)(struct flb_plugin_proxy_def *))sym("FLBPluginRegister");
    if (!reg) {
        out_line("register missing=1");
        return -1;
    }
    rc = reg(H.def);
    qn = q(H.def->name);
    qd = q(H.def->description);
    out_line("register rc=%d type=%d proxy=%d flags=%d event_type=%d name=%s desc=%s", rc,
             H.def->type, H.def->proxy, H.def->flags, H.def->event_type, qn, qd);
    free(qn);
    free(qd);
    if (rc == -1 || H.def->proxy != FLB_PROXY_GOLANG || H.def->type != FLB_PROXY_OUTPUT_PLUGIN) {
        return -1;
    }
    H.plugin.cb_init = (int (*)(struct flbgo_output_plugin *))sym("FLBPluginInit");
    if (!H.plugin.cb_init) {
        flb_log(FLB_LOG_ERROR, "[go proxy]: could not load FLBPluginInit symbol");
        return -1;
    }
    H.plugin.cb_flush = (int (*)(const void *, size_t, const char *))sym("FLBPluginFlush");
    H.plugin.cb_flush_ctx =
        (int (*)(void *, const void *, size_t, char *))sym("FLBPluginFlushCtx");
    H.plugin.cb_exit = (int (*)(void))sym("FLBPluginExit");
    H.plugin.cb_exit_ctx = (int (*)(void *))sym("FLBPluginExitCtx");
    H.plugin.name = strdup(H.def->name ? H.def->name : "");
    H.pre_run = (int (*)(int))sym("FLBPluginOutputPreRun");
    H.pre_exit = (void (*)(int))sym("FLBPluginOutputPreExit");
    H.unregister = (void (*)(struct flb_plugin_proxy_def *))sym("FLBPluginUnregister");
    out_line("symbols init=1 flush_ctx=%d flush=%d exit_ctx=%d exit=%d prerun=%d preexit=%d "
             "unregister=%d",
             H.plugin.cb_flush_ctx != NULL, H.plugin.cb_flush != NULL,
             H.plugin.cb_exit_ctx != NULL, H.plugin.cb_exit != NULL, H.pre_run != NULL,
             H.pre_exit != NULL, H.unregister != NULL);
    if (!H.plugin.cb_flush_ctx && !H.plugin.cb_flush) {
        flb_log(FLB_LOG_WARN, "[flbhost] plugin exports no flush symbol (Fluent Bit would "
                              "call NULL on the first flush)");
    }
    H.api.output_get_property = api_output_get_property;
    H.api.input_get_property = api_null_property;
    H.api.output_get_cmt_instance = api_null_output_cmt;
    H.api.input_get_cmt_instance = api_null_cmt;
    H.api.log_print = api_log_print;
    H.api.input_log_check = api_null_log_check;
    H.api.output_log_check = api_output_log_check;
    H.api.custom_get_property = api_null_property;
    H.api.custom_log_check = api_null_log_check;
    return 0;
}

/* VmHWM from /proc/self/status (Linux), -1 elsewhere. Unlike ru_maxrss it
 * is this process's own peak: Linux carries the RSS high-water mark of the
 * process that exec'd us (e.g. a large go test binary, whose memory a
 * vfork child shares until exec) into ru_maxrss. */
static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void print_rusage(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    out_line("rusage user_s=%ld.%06ld sys_s=%ld.%06ld maxrss_kb=%ld hwm_kb=%ld", (long)ru.ru_utime.tv_sec,
             (long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
             ru.ru_maxrss, vm_hwm_kb());
}

int main(int argc, char **argv)
{
    const char *plugin_path = NULL;
    int i, a, want_rusage = 0, failed = -1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (a = 1; a < argc; a++) {
        const char *o = argv[a];
        if (o[0] != '-') break;
        if (!strcmp(o, "--rusage")) {
            want_rusage = 1;
            continue;
        }
        if (!strcmp(o, "-q")) {
            H.quiet = 1;
            continue;
        }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) usage(NULL);
        if (strlen(o) != 2 || a + 1 >= argc) usage("bad option");
        switch (o[1]) {
        case 'p': plugin_path = argv[++a]; break;
        case 'r':
            H.retry_limit = (int)parse_long(argv[++a], "retry limit");
            if (H.retry_limit < -1) usage("retry limit must be >= -1");
            break;
        case 'l':
            H.log_level = parse_log_level(argv[++a]);
            if (H.log_level < 0) usage("bad log level");
            break;
        case 'd': H.delay_ms = parse_long(argv[++a], "delay"); break;
        case 'w':
            H.workers = (int)parse_long(argv[++a], "workers");
            if (H.workers < 0) usage("workers must be >= 0");
            break;
        case 'i':
            H.ins = realloc(H.ins, sizeof(struct instance) * (H.nins + 1));
            memset(&H.ins[H.nins], 0, sizeof(struct instance));
            H.ins[H.nins].idx = H.nins;
            H.ins[H.nins].file = argv[++a];
            H.nins++;
            break;
        default: usage("unknown option");
        }
    }
    if (!plugin_path) usage("-p is required");
    if (H.nins == 0) usage("at least one -i is required");
    for (i = 0; i < H.nins; i++) {
        H.ins[i].log_level = H.log_level;
        H.ins[i].retry_limit = H.retry_limit;
        H.ins[i].workers = H.workers;
        load_props(&H.ins[i]);
    }
    /* validate actions before loading anything */
    for (i = a; i < argc;) {
        if ((!strcmp(argv[i], "flush") || !strcmp(argv[i], "tail")) && i + 3 < argc) {
            get_instance(argv[i + 1]);
            i += 4;
            if (!strcmp(argv[i - 4], "tail") && i < argc && isdigit((unsigned char)argv[i][0])) {
                if (parse_long(argv[i], "records per chunk") <= 0) usage("tail: N must be > 0");
                i++;
            }
        }
        else if (!strcmp(argv[i], "sleep") && i + 1 < argc) {
            if (parse_long(argv[i + 1], "sleep ms") < 0) usage("sleep: MS must be >= 0");
            i += 2;
        }
        else usage("bad action");
    }

    if (load_plugin(plugin_path) != 0) {
        flb_log(FLB_LOG_ERROR, "[config] section '%s' tried to instance a plugin name that "
                               "doesn't exist",
                H.def && H.def->name ? H.def->name : "?");
        out_line("summary flushes=0 ok=0 retry=0 error=0 dropped_chunks=0 chunks=0 "
                 "ok_chunks=0 skipped=0 init_failed=1");
        return EXIT_STARTUP;
    }

    for (i = 0; i < H.nins; i++) {
        H.ins[i].ctx = calloc(1, sizeof(struct flb_plugin_proxy_context));
    }
    for (i = 0; i < H.nins; i++) {
        struct instance *ins = &H.ins[i];
        H.plugin.api = &H.api;
        H.plugin.o_ins = ins;
        H.plugin.context = ins->ctx;
        ins->init_rc = H.plugin.cb_init(&H.plugin);
        out_line("init idx=%d rc=%d ctx=%d", i, ins->init_rc, ins->ctx->remote_context != NULL);
        if (ins->init_rc <= 0) {
            ins->init_state = -1;
            flb_log(FLB_LOG_ERROR, "[go proxy]: plugin '%s' failed to initialize",
                    H.plugin.name);
            flb_log(FLB_LOG_ERROR, "[output] could not initialize '%s' plugin", H.plugin.name);
            flb_log(FLB_LOG_ERROR, "[output] failed to initialize '%s' plugin", H.plugin.name);
            flb_log(FLB_LOG_ERROR, "[engine] output initialization failed");
            failed = i;
            break;
        }
        ins->init_state = 1;
        start_workers(ins);
    }
    if (failed >= 0) {
        shutdown_instances(failed);
        out_line("summary flushes=0 ok=0 retry=0 error=0 dropped_chunks=0 chunks=0 "
                 "ok_chunks=0 skipped=0 init_failed=1");
        if (want_rusage) print_rusage();
        return EXIT_STARTUP;
    }
    if (H.pre_run) {
        for (i = 0; i < H.nins; i++) {
            int rc = H.pre_run(0);
            out_line("prerun idx=%d rc=%d", i, rc);
        }
    }

    while (a < argc) {
        if (!strcmp(argv[a], "flush")) {
            act_flush(get_instance(argv[a + 1]), argv[a + 2], argv[a + 3]);
            a += 4;
        }
        else if (!strcmp(argv[a], "tail")) {
            struct instance *ins = get_instance(argv[a + 1]);
            const char *tag = argv[a + 2], *file = argv[a + 3];
            long n = 1000;
            a += 4;
            if (a < argc && isdigit((unsigned char)argv[a][0])) {
                n = parse_long(argv[a++], "records per chunk");
            }
            act_tail(ins, tag, file, n);
        }
        else {
            long ms = parse_long(argv[a + 1], "sleep ms");
            sleep_ms(ms);
            out_line("sleep ms=%ld", ms);
            a += 2;
        }
    }

    shutdown_instances(-1);
    out_line("summary flushes=%ld ok=%ld retry=%ld error=%ld dropped_chunks=%ld chunks=%ld "
             "ok_chunks=%ld skipped=%ld",
             H.flushes, H.ok, H.retry, H.error, H.dropped, H.chunks, H.ok_chunks, H.skipped);
    if (want_rusage) print_rusage();
    return 0;
}
