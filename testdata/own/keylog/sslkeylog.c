/*
 * sslkeylog.c - LD_PRELOAD shim that makes any OpenSSL (1.1.1 / 3.x) program
 * write its TLS secrets in NSS key-log format to $SSLKEYLOGFILE.
 *
 * FreeRDP 2.11 has no /tls-secrets-file option, so for the key-logged test
 * captures xfreerdp is started with
 *
 *     LD_PRELOAD=./sslkeylog.so SSLKEYLOGFILE=/path/keys.log xfreerdp ...
 *
 * It wraps SSL_CTX_new and SSL_new (FreeRDP calls SSL_CTX_new itself and
 * BIO_new_ssl -> SSL_new inside libssl) and installs
 * SSL_CTX_set_keylog_callback on the context; the callback appends one line
 * per secret (CLIENT_RANDOM for TLS 1.2, CLIENT_HANDSHAKE_TRAFFIC_SECRET ...
 * for TLS 1.3) and flushes at once.  Nothing else is changed.
 *
 * Build:  gcc -shared -fPIC -O2 -Wall -o sslkeylog.so sslkeylog.c -ldl
 * (no -lssl: the real OpenSSL functions are looked up at run time, so the
 * library is harmless in processes that do not use OpenSSL).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef void (*keylog_cb)(const SSL *, const char *);

static SSL_CTX *(*real_ctx_new)(const SSL_METHOD *);
static SSL *(*real_ssl_new)(SSL_CTX *);
static void (*set_keylog)(SSL_CTX *, keylog_cb);
static keylog_cb (*get_keylog)(const SSL_CTX *);
static SSL_CTX *(*get_ctx)(const SSL *);

static void lookup(void)
{
    if (!real_ctx_new) real_ctx_new = dlsym(RTLD_NEXT, "SSL_CTX_new");
    if (!real_ssl_new) real_ssl_new = dlsym(RTLD_NEXT, "SSL_new");
    if (!set_keylog) set_keylog = dlsym(RTLD_DEFAULT, "SSL_CTX_set_keylog_callback");
    if (!get_keylog) get_keylog = dlsym(RTLD_DEFAULT, "SSL_CTX_get_keylog_callback");
    if (!get_ctx) get_ctx = dlsym(RTLD_DEFAULT, "SSL_get_SSL_CTX");
}

static void write_line(const SSL *ssl, const char *line)
{
    (void)ssl;
    const char *path = getenv("SSLKEYLOGFILE");
    if (!path || !*path || !line) return;
    /* open/append/close per line: O_APPEND keeps concurrent writers' lines
     * whole, and nothing is buffered when the program dies */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    if (buf) {
        memcpy(buf, line, n);
        buf[n] = '\n';
        ssize_t w = write(fd, buf, n + 1);
        (void)w;
        free(buf);
    }
    fsync(fd);
    close(fd);
}

static void install(SSL_CTX *ctx)
{
    if (!ctx || !set_keylog) return;
    if (get_keylog && get_keylog(ctx) == write_line) return;
    set_keylog(ctx, write_line);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
    lookup();
    if (!real_ctx_new) return NULL;
    SSL_CTX *ctx = real_ctx_new(method);
    install(ctx);
    return ctx;
}

SSL *SSL_new(SSL_CTX *ctx)
{
    lookup();
    if (!real_ssl_new) return NULL;
    install(ctx); /* libssl reads ctx->keylog_callback when it logs, so this suffices */
    return real_ssl_new(ctx);
}
