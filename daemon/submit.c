/*
 * HTTPS requests to cPanel through libcurl's multi interface.  libcurl reports to
 * the loop which sockets to watch and when to wake it; each event or timeout calls
 * curl_multi_socket_action, after which finished transfers are collected.
 */
#include "daemon/submit.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
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
    CURLM *multi;
    CURLSH *share;              /* TLS sessions and DNS responses, shared by all transfers */
    struct event *timer;
    int running;
    TAILQ_HEAD(, transfer) transfers;
};

struct transfer {
    TAILQ_ENTRY(transfer) link;
    struct submitter *sub;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    size_t body_sent;
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

static void check_finished(struct submitter *sub);

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

static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nitems;

    if (n > t->body_len - t->body_sent)
        n = t->body_len - t->body_sent;
    memcpy(buffer, t->body + t->body_sent, n);
    t->body_sent += n;
    return n;
}

/*
 * libcurl sends a request again on a new connection when a reused one dies
 * before any response, and to do so it rewinds the body.  cPanel may have placed
 * the order already, so the rewind is refused: the transfer fails
 * (CURLE_SEND_FAIL_REWIND) and certqd treats it as a response that never came.
 */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
    struct transfer *t = userdata;

    if (origin == SEEK_SET && offset == 0 && t->body_sent == 0)
        return CURL_SEEKFUNC_OK;
    return CURL_SEEKFUNC_FAIL;
}

/* Lets OpenSSL free a connection's buffers while it waits, which is most of a slow request's life. */
static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *userdata)
{
    SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
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
    struct submitter *sub = arg;
    int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

    curl_multi_socket_action(sub->multi, fd, action, &sub->running);
    check_finished(sub);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct submitter *sub = userp;
    struct sock_watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            free(w);
            curl_multi_assign(sub->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (w == NULL) {
        w = xcalloc(1, sizeof(*w));
        curl_multi_assign(sub->multi, s, w);
    } else {
        event_free(w->ev);
    }
    w->ev = event_new(sub->d->base, s, kind, on_socket_event, sub);
    event_add(w->ev, NULL);
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct submitter *sub = arg;

    curl_multi_socket_action(sub->multi, CURL_SOCKET_TIMEOUT, 0, &sub->running);
    check_finished(sub);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct submitter *sub = userp;

    if (timeout_ms < 0) {
        evtimer_del(sub->timer);
        return 0;
    }
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(sub->timer, &tv);
    return 0;
}

static void transfer_free(struct transfer *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    if (t->body) {
        explicit_bzero(t->body, strlen(t->body));
        free(t->body);
    }
    buf_free(&t->response);
    free(t);
}

static void transfer_complete(struct submitter *sub, struct transfer *t, CURLcode code)
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
    tr.http_status = code == CURLE_OK || t->truncated ? status : 0;
    /* Once any byte of the request left, cPanel may have acted on it. */
    tr.request_sent = header_bytes > 0 || sent > 0;
    tr.body = t->response.data ? t->response.data : "";
    tr.body_len = t->response.len;
    tr.truncated = t->truncated;
    tr.retry_after_s = t->retry_after_s;
    tr.duration_ms = mono_ms() - t->started_ms;
    if (t->truncated && tr.http_status == 0)
        tr.http_status = 200;

    curl_multi_remove_handle(sub->multi, t->easy);
    TAILQ_REMOVE(&sub->transfers, t, link);
    t->done(t->arg, &tr);
    transfer_free(t);
}

static void check_finished(struct submitter *sub)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(sub->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        transfer_complete(sub, t, msg->data.result);
    }
}

void submit_request(struct submitter *sub, const struct server_config *server, const char *path, const char *body,
                    submit_done_fn done, void *arg)
{
    struct transfer *t = xcalloc(1, sizeof(*t));
    struct config *cfg = sub->d->cfg;
    struct buf url, auth;

    t->sub = sub;
    t->done = done;
    t->arg = arg;
    t->retry_after_s = -1;
    t->max_response = (size_t)cfg->max_response_bytes;
    t->body = xstrdup(body);
    t->started_ms = mono_ms();
    buf_init(&t->response);

    buf_init(&url);
    buf_printf(&url, "%s%s", server->url, path);
    buf_init(&auth);
    buf_printf(&auth, "Authorization: %s %s:%s", config_auth_name(server->auth), server->user, server->token);
    t->headers = curl_slist_append(NULL, auth.data);
    t->headers = curl_slist_append(t->headers, "Content-Type: application/x-www-form-urlencoded");
    t->headers = curl_slist_append(t->headers, "Expect:");
    explicit_bzero(auth.data, auth.len);
    buf_free(&auth);

    CURL *e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url.data);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    /* The body comes from a read callback, never POSTFIELDS, so that libcurl cannot resend it by itself. */
    t->body_len = strlen(t->body);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, t);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
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
    curl_easy_setopt(e, CURLOPT_USERAGENT, "certqd/" CERTQD_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, sub->share);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    /* Responses are small; a smaller receive buffer saves memory when thousands of requests wait. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 8192L);
    /* Bodies are a few kilobytes: the smallest upload buffer libcurl allows (16 KiB) is plenty. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    if (server->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, server->ca_file);
    buf_free(&url);

    CURLMcode rc = curl_multi_add_handle(sub->multi, e);
    if (rc == CURLM_OK) {
        TAILQ_INSERT_TAIL(&sub->transfers, t, link);
        /*
         * libcurl 7.88 skips the timer callback when the new deadline equals the
         * last one it reported, which can leave a new transfer unstarted; a
         * timer of zero always gives it its first turn.
         */
        struct timeval now = { 0, 0 };
        evtimer_add(sub->timer, &now);
    }
    else {
        struct transfer_result tr = { .curl_code = -1, .curl_error = curl_multi_strerror(rc), .body = "" };
        log_error("could not start a request: server=%s error=\"%s\"", server->name, curl_multi_strerror(rc));
        t->done(t->arg, &tr);
        transfer_free(t);
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
    sub->multi = curl_multi_init();
    TAILQ_INIT(&sub->transfers);
    /* Resuming TLS sessions spares a full handshake and certificate check for each new connection. */
    sub->share = curl_share_init();
    curl_share_setopt(sub->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(sub->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    sub->timer = evtimer_new(d->base, on_timer, sub);
    curl_multi_setopt(sub->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sub->multi, CURLMOPT_SOCKETDATA, sub);
    curl_multi_setopt(sub->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(sub->multi, CURLMOPT_TIMERDATA, sub);
    curl_multi_setopt(sub->multi, CURLMOPT_MAXCONNECTS, (long)d->cfg->max_in_flight);
    return sub;
}

int submit_running(const struct submitter *sub)
{
    return sub->running;
}

void submit_abort_all(struct submitter *sub)
{
    struct transfer *t;

    while ((t = TAILQ_FIRST(&sub->transfers)) != NULL) {
        snprintf(t->error, sizeof(t->error), "abandoned at shutdown after shutdown_timeout_s");
        transfer_complete(sub, t, CURLE_OPERATION_TIMEDOUT); /* NOLINT(clang-analyzer-unix.Malloc): it takes t off the list before freeing it */
    }
}

void submit_free(struct submitter *sub)
{
    if (sub == NULL)
        return;
    curl_multi_cleanup(sub->multi);
    curl_share_cleanup(sub->share);
    event_free(sub->timer);
    free(sub);
}
