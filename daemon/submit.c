/*
 * HTTPS requests to cPanel through libcurl's multi interface.  libcurl reports to
 * the loop which sockets to watch and when to wake it; each event or timeout calls
 * curl_multi_socket_action, after which finished transfers are collected.
 *
 * Each server has a multi handle of its own.  Removing a finished transfer makes
 * libcurl 7.88 search the multi handle's connection cache for the transfer's
 * last connection, so with one cache for all servers each request cost more
 * the more connections were open.
 */
#include "daemon/submit.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/uapi.h"
#include "common/util.h"
#include "daemon/batch.h"
#include "daemon/certqd.h"

struct submitter {
    struct daemon *d;
    struct hmap pools;          /* server name -> struct pool */
    struct hmap stores;         /* ca_file, or "" for the system's CAs -> X509_STORE */
    TAILQ_HEAD(, transfer) transfers;
};

/* Idle easy handles kept per server for the next requests, which spares libcurl's set-up of a new one. */
#define POOL_IDLE_MAX 64

/* One server's multi handle: its connections, sockets and timer. */
struct pool {
    struct submitter *sub;
    CURLM *multi;
    /*
     * TLS sessions and DNS responses of this server's transfers.  libcurl 7.88
     * keeps 8 sessions per share, so one share for all servers would evict a
     * server's session before its next connection could resume it.
     */
    CURLSH *share;
    struct event *timer;
    int running;
    CURL *idle[POOL_IDLE_MAX];
    int idle_count;
};

struct transfer {
    TAILQ_ENTRY(transfer) link;
    struct submitter *sub;
    struct pool *pool;
    CURL *easy;
    struct curl_slist *headers;
    X509_STORE *store;          /* the CAs that verify the server, one reference */
    char *body;
    size_t body_len;
    int prereq_calls;
    bool resend_blocked;
    struct buf response;
    size_t max_response;
    bool truncated;
    int64_t retry_after_s;
    int64_t started_ms;
    char error[CURL_ERROR_SIZE];
    submit_done_fn done;
    void *arg;
};

struct sock_watch {
    struct event *ev;
};

static void check_finished(struct pool *pool);

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;

    if (t->response.len + n > t->max_response) {
        t->truncated = true;
        return 0;   /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    buf_append(&t->response, ptr, n);
    return n;
}

/*
 * libcurl sends a request again on a new connection when a reused one dies
 * before any response.  cPanel may have placed the order already, so once any
 * byte of the request went out the second attempt is blocked: the transfer
 * fails and certqd treats it as a response that never came.
 */
static int on_prereq(void *userdata, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    struct transfer *t = userdata;
    long sent = 0;

    if (t->prereq_calls++ == 0)
        return CURL_PREREQFUNC_OK;
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
    if (sent == 0)
        return CURL_PREREQFUNC_OK;
    t->resend_blocked = true;
    return CURL_PREREQFUNC_ABORT;
}

/*
 * Gives the connection the server's CAs, loaded once, instead of libcurl 7.88
 * reading and parsing the CA file again for every new connection.  Also sets
 * SSL_MODE_RELEASE_BUFFERS, so OpenSSL may free a connection's buffers while
 * it waits for a slow response.
 */
static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *userdata)
{
    X509_STORE *store = userdata;

    SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (store)
        SSL_CTX_set1_cert_store((SSL_CTX *)ssl_ctx, store);
    return CURLE_OK;
}

/*
 * Returns the store of CAs for server (its ca_file, or the system's CAs), loaded
 * on first use, or NULL with err set.  The caller takes no reference.
 */
static X509_STORE *ca_store(struct submitter *sub, const struct server_config *server, char *err, size_t err_len)
{
    const char *key = server->ca_file ? server->ca_file : "";
    X509_STORE *store = hmap_get(&sub->stores, key);

    if (store)
        return store;
    store = X509_STORE_new();
    if (store == NULL) {
        snprintf(err, err_len, "out of memory for CA certificates");
        return NULL;
    }
    int ok = server->ca_file ? X509_STORE_load_file(store, server->ca_file) : X509_STORE_set_default_paths(store);
    if (!ok) {
        char reason[256];
        ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
        ERR_clear_error();
        snprintf(err, err_len, "could not read CA certificates from ca_file %s of server %s: %s; check the file",
                 server->ca_file ? server->ca_file : "(system)", server->name, reason);
        X509_STORE_free(store);
        return NULL;
    }
    /* As libcurl does: an intermediate CA in the file may serve as the trust anchor. */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    hmap_put(&sub->stores, key, store);
    log_info("CA certificates loaded: server=%s file=%s", server->name, server->ca_file ? server->ca_file : "(system)");
    return store;
}

static void free_store(const char *key, void *value, void *arg)
{
    X509_STORE_free(value);
}

void submit_config_changed(struct submitter *sub)
{
    /* A reload may point at a renewed CA file; running transfers keep their own references. */
    hmap_each(&sub->stores, free_store, NULL);
    hmap_destroy(&sub->stores);
    hmap_init(&sub->stores);
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    if (n > sizeof(name) && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        char value[32];
        size_t len = n - (sizeof(name) - 1);
        if (len >= sizeof(value))
            len = sizeof(value) - 1;
        memcpy(value, ptr + sizeof(name) - 1, len);
        value[len] = '\0';
        char *end;
        long long s = strtoll(value, &end, 10);
        /* Only the delta-seconds form is read; an HTTP date is ignored and the backoff applies. */
        if (end != value && s >= 0)
            t->retry_after_s = s;
    }
    return n;
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct pool *pool = arg;
    int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

    curl_multi_socket_action(pool->multi, fd, action, &pool->running);
    check_finished(pool);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct pool *pool = userp;
    struct sock_watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            free(w);
            curl_multi_assign(pool->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (w == NULL) {
        w = xcalloc(1, sizeof(*w));
        curl_multi_assign(pool->multi, s, w);
    } else {
        event_free(w->ev);
    }
    w->ev = event_new(pool->sub->d->base, s, kind, on_socket_event, pool);
    event_add(w->ev, NULL);
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pool *pool = arg;

    curl_multi_socket_action(pool->multi, CURL_SOCKET_TIMEOUT, 0, &pool->running);
    check_finished(pool);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct pool *pool = userp;

    if (timeout_ms < 0) {
        evtimer_del(pool->timer);
        return 0;
    }
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(pool->timer, &tv);
    return 0;
}

static struct pool *pool_for(struct submitter *sub, const struct server_config *server)
{
    struct pool *pool = hmap_get(&sub->pools, server->name);

    if (pool == NULL) {
        pool = xcalloc(1, sizeof(*pool));
        pool->sub = sub;
        pool->multi = curl_multi_init();
        pool->timer = evtimer_new(sub->d->base, on_timer, pool);
        curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool);
        curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
        curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool);
        /* Resuming TLS sessions spares a full handshake and certificate check for each new connection. */
        pool->share = curl_share_init();
        curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        hmap_put(&sub->pools, server->name, pool);
    }
    /* Keep as many idle connections as the server may have requests at once. */
    curl_multi_setopt(pool->multi, CURLMOPT_MAXCONNECTS, (long)server->max_in_flight);
    return pool;
}

static void transfer_free(struct transfer *t)
{
    if (t->easy && t->pool && t->pool->idle_count < POOL_IDLE_MAX) {
        curl_easy_reset(t->easy);
        t->pool->idle[t->pool->idle_count++] = t->easy;
    } else if (t->easy) {
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->headers);
    X509_STORE_free(t->store);
    if (t->body) {
        explicit_bzero(t->body, t->body_len);
        free(t->body);
    }
    buf_free(&t->response);
    free(t);
}

static void transfer_complete(struct transfer *t, CURLcode code)
{
    struct transfer_result tr = { 0 };
    curl_off_t sent = 0;
    long status = 0;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
    long header_bytes = 0;
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &header_bytes);

    tr.curl_code = (int)code;
    tr.curl_error = t->error[0] ? t->error : curl_easy_strerror(code);
    if (t->resend_blocked)
        tr.curl_error = "the connection closed after the request was sent; libcurl's own resend on a new connection "
                        "was blocked, because cPanel may have placed the order";
    tr.http_status = code == CURLE_OK || t->truncated ? status : 0;
    /* Once any byte of the request left, cPanel may have acted on it. */
    tr.request_sent = header_bytes > 0 || sent > 0 || t->resend_blocked;
    tr.body = t->response.data ? t->response.data : "";
    tr.body_len = t->response.len;
    tr.truncated = t->truncated;
    tr.retry_after_s = t->retry_after_s;
    tr.duration_ms = mono_ms() - t->started_ms;
    if (t->truncated && tr.http_status == 0)
        tr.http_status = 200;

    curl_multi_remove_handle(t->pool->multi, t->easy);
    TAILQ_REMOVE(&t->sub->transfers, t, link);
    t->done(t->arg, &tr);
    transfer_free(t);
}

static void check_finished(struct pool *pool)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        transfer_complete(t, msg->data.result);
    }
}

/* Reports a transfer that could not start; nothing was sent. */
static void transfer_fail_unsent(struct transfer *t, int code, const char *error)
{
    struct transfer_result tr = { .curl_code = code, .curl_error = error, .body = "" };

    t->done(t->arg, &tr);
    transfer_free(t);
}

void submit_request(struct submitter *sub, const struct server_config *server, const char *path, const char *body,
                    submit_done_fn done, void *arg)
{
    struct transfer *t = xcalloc(1, sizeof(*t));
    struct config *cfg = sub->d->cfg;
    struct buf url, auth;
    char err[512];

    t->sub = sub;
    t->done = done;
    t->arg = arg;
    t->retry_after_s = -1;
    t->max_response = (size_t)cfg->max_response_bytes;
    t->body_len = strlen(body);
    t->body = xstrdup(body);
    t->started_ms = mono_ms();
    buf_init(&t->response);

    if (server->tls_verify) {
        X509_STORE *store = ca_store(sub, server, err, sizeof(err));
        if (store == NULL) {
            log_error("could not start a request: server=%s error=\"%s\"", server->name, err);
            transfer_fail_unsent(t, CURLE_SSL_CACERT_BADFILE, err);
            return;
        }
        X509_STORE_up_ref(store);
        t->store = store;
    }

    buf_init(&url);
    buf_printf(&url, "%s%s", server->url, path);
    buf_init(&auth);
    buf_printf(&auth, "Authorization: %s %s:%s", config_auth_name(server->auth), server->user, server->token);
    t->headers = curl_slist_append(NULL, auth.data);
    t->headers = curl_slist_append(t->headers, "Content-Type: application/x-www-form-urlencoded");
    t->headers = curl_slist_append(t->headers, "Expect:");
    explicit_bzero(auth.data, auth.len);
    buf_free(&auth);

    t->pool = pool_for(sub, server);
    CURL *e = t->pool->idle_count > 0 ? t->pool->idle[--t->pool->idle_count] : curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url.data);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    /* A body under 64 KiB leaves with the headers in one write; on_prereq stops libcurl from sending it twice. */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)cfg->request_timeout_s);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)cfg->connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, server->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, server->tls_verify ? 2L : 0L);
    /*
     * The CAs come from on_ssl_ctx; libcurl itself loads none.  libcurl's own
     * cache of CA stores is off: it would keep the store of the first
     * connection, from before a reload that changed ca_file.
     */
    curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "certqd/" CERTQD_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, t->pool->share);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, t->store);
    /* Responses are small; a small receive buffer saves memory when thousands of requests wait. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    /* libcurl copies what it sends over TLS into this buffer; 16 KiB, the least it allows, instead of 64. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    buf_free(&url);

    CURLMcode rc = curl_multi_add_handle(t->pool->multi, e);
    if (rc == CURLM_OK) {
        TAILQ_INSERT_TAIL(&sub->transfers, t, link);
        /*
         * libcurl 7.88 skips the timer callback when the new deadline equals the
         * last one it reported, which can leave a new transfer unstarted; a
         * timer of zero always gives it its first turn.
         */
        struct timeval now = { 0, 0 };
        evtimer_add(t->pool->timer, &now);
    }
    else {
        log_error("could not start a request: server=%s error=\"%s\"", server->name, curl_multi_strerror(rc));
        transfer_fail_unsent(t, -1, curl_multi_strerror(rc));
    }
}

static void batch_transfer_done(void *arg, const struct transfer_result *tr)
{
    batch_finish(arg, tr);
}

void submit_start(struct submitter *sub, struct batch *b)
{
    const char **certs = xcalloc(b->cert_count, sizeof(char *));
    struct held_job *hj;
    struct buf body;
    size_t n = 0;

    TAILQ_FOREACH(hj, &b->jobs, link)
        for (size_t i = 0; i < hj->job->cert_count; i++)
            certs[n++] = hj->job->certs[i].json;

    struct uapi_order_request req = {
        .whm_account = b->server_cfg.auth == AUTH_WHM ? b->group->user : NULL,
        .provider = b->group->provider,
        .access_token = b->group->access_token,
        .url_after_checkout = b->group->url_after_checkout,
        .certificates = certs,
        .certificate_count = n,
    };
    buf_init(&body);
    uapi_encode_order(&body, &req);
    free(certs);

    const char *path = b->server_cfg.auth == AUTH_WHM ? "/json-api/cpanel" : "/execute/Market/request_ssl_certificates";
    submit_request(sub, &b->server_cfg, path, body.data, batch_transfer_done, b);
    explicit_bzero(body.data, body.len);
    buf_free(&body);
}

struct submitter *submit_new(struct daemon *d)
{
    struct submitter *sub = xcalloc(1, sizeof(*sub));

    sub->d = d;
    TAILQ_INIT(&sub->transfers);
    hmap_init(&sub->pools);
    hmap_init(&sub->stores);
    return sub;
}

void submit_abort_all(struct submitter *sub)
{
    struct transfer *t;

    while ((t = TAILQ_FIRST(&sub->transfers)) != NULL) {
        snprintf(t->error, sizeof(t->error), "abandoned at shutdown after shutdown_timeout_s");
        transfer_complete(t, CURLE_OPERATION_TIMEDOUT); /* NOLINT(clang-analyzer-unix.Malloc): it takes t off the list before freeing it */
    }
}

static void free_pool(const char *key, void *value, void *arg)
{
    struct pool *pool = value;

    for (int i = 0; i < pool->idle_count; i++)
        curl_easy_cleanup(pool->idle[i]);
    curl_multi_cleanup(pool->multi);
    curl_share_cleanup(pool->share);
    event_free(pool->timer);
    free(pool);
}

void submit_free(struct submitter *sub)
{
    if (sub == NULL)
        return;
    hmap_each(&sub->pools, free_pool, NULL);
    hmap_destroy(&sub->pools);
    hmap_each(&sub->stores, free_store, NULL);
    hmap_destroy(&sub->stores);
    free(sub);
}
