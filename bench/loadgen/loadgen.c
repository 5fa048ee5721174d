// mtlskit proxy benchmark load generator: one thread, epoll, non-blocking OpenSSL client connections
// with a client certificate, closed loop (one request in flight per connection), HTTP/1.1 GET.
// Every response is checked: status 200 and exactly the expected body (Content-Length or chunked).
//
// Modes:
//   ka      N keep-alive connections, one request in flight on each; latency = request write -> response
//   hs      one request per connection, full TLS 1.3 handshake each time (no session offered);
//           latency = connect() -> response
//   resume  like hs, but each connection offers the newest session ticket of the previous connection
//           of the same slot (TLS 1.3 PSK resumption); the resumed count is reported
//   idle    open --conns connections (handshake + one request each, --concurrency at a time), print a
//           "held" JSON line, keep them open and idle until stdin closes or --hold-ms passes, then
//           report how many the server dropped meanwhile
//
// Bounded: warm-up and measurement in milliseconds, a request cap, a per-operation timeout, a drain
// deadline, and an error cap that aborts the run. Output: one JSON object per line on stdout.
// Only 127.0.0.1 (or another IPv4 literal given with --host) is connected to.
//
// Build: gcc -O2 -o loadgen loadgen.c -lssl -lcrypto
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_KA, M_HS, M_RESUME, M_IDLE };
enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_IDLE };
enum phase { P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };
enum err {
  E_CONNECT,
  E_HANDSHAKE,
  E_STATUS,
  E_BODY,
  E_PARSE,
  E_CLOSED,
  E_TIMEOUT,
  E_IO,
  E_COUNT
};
static const char *ERR_NAMES[E_COUNT] = {"connect", "handshake", "status", "body",
                                         "parse",   "closed",    "timeout", "io"};

struct conn {
  int fd;
  SSL *ssl;
  enum state st;
  uint32_t events;
  uint64_t t_conn, t_req, deadline;
  char *rbuf;
  size_t rlen, rcap;
  size_t woff;
  SSL_SESSION *sess;
  int started; /* idle mode: this slot was started */
};

/* ------------------------------------------------------------------ options and globals */
static enum mode mode = M_KA;
static const char *host = "127.0.0.1";
static int port = 0;
static const char *cert_file, *key_file, *ca_file, *path = "/", *body_arg;
static int concurrency = 64, conns_target = 10000;
static long warmup_ms = 1000, duration_ms = 5000, timeout_ms = 10000, hold_ms = 30000,
            open_ms = 60000, drain_ms = 2000;
static long max_requests = 5000000, max_errors = 1000;
static int single_use; /* resume: let OpenSSL use each ticket once (RFC 8446 C.4), like browsers */

static struct conn *conns;
static int nconns;
static int epfd;
static SSL_CTX *ctx;
static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static const char *expect_body;
static size_t expect_len;

static enum phase phase = P_WARMUP;
static uint64_t t_start, t_measure0, t_measure1, t_drain_end;
static struct rusage ru0, ru1;
static long ok_total, ok_measured, conns_opened_measured, resumed_measured, handshakes_measured;
static long reconnects, tickets_on_resumed;
static long errors[E_COUNT];
static long errors_total;
static char first_error[256];
static int aborted;
static uint32_t *lat;
static size_t nlat, latcap;
static int active;
/* idle mode */
static int idle_next, idle_established, idle_dropped, idle_failed;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void note_error(enum err e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(enum err e, const char *fmt, ...) {
  errors[e]++;
  errors_total++;
  if (!first_error[0]) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(first_error, sizeof first_error, "%s: ", ERR_NAMES[e]);
    vsnprintf(first_error + n, sizeof first_error - (size_t)n, fmt, ap);
    va_end(ap);
  }
  if (errors_total >= max_errors && !aborted) {
    aborted = 1;
    phase = P_DONE;
  }
}

static const char *ssl_err_text(void) {
  static char buf[160];
  unsigned long e = ERR_get_error();
  if (!e) return errno ? strerror(errno) : "no OpenSSL error";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

/* ------------------------------------------------------------------ epoll helpers */
static void want(struct conn *c, uint32_t ev) {
  if (c->events == ev) return;
  struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - conns)};
  if (epoll_ctl(epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) != 0) {
    perror("epoll_ctl");
    exit(3);
  }
  c->events = ev;
}

static int may_start(void) {
  if (phase == P_DRAIN || phase == P_DONE) return 0;
  if (phase == P_MEASURE && ok_measured >= max_requests) return 0;
  return 1;
}

static void close_conn(struct conn *c, int graceful) {
  if (c->ssl) {
    if (graceful) SSL_shutdown(c->ssl); /* sends close_notify; we do not wait for the peer's */
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    if (!graceful) {
      struct linger l = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
  }
  if (c->st != S_FREE) active--;
  c->st = S_FREE;
  c->events = 0;
  c->rlen = 0;
  c->woff = 0;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  struct conn *c = SSL_get_app_data(ssl);
  if (!c || mode != M_RESUME) return 0;
  if (phase == P_MEASURE && SSL_session_reused(ssl)) tickets_on_resumed++;
  if (c->sess) SSL_SESSION_free(c->sess);
  c->sess = sess;
  return 1; /* we keep the reference */
}

static void start_conn(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    note_error(E_CONNECT, "socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->t_conn = now_us();
  c->deadline = c->t_conn + (uint64_t)timeout_ms * 1000u;
  c->st = S_CONNECTING;
  c->events = 0;
  c->rlen = 0;
  c->woff = 0;
  active++;
  if (phase == P_MEASURE) conns_opened_measured++;
  int r = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
  if (r != 0 && errno != EINPROGRESS) {
    note_error(E_CONNECT, "connect: %s", strerror(errno));
    close_conn(c, 0);
    return;
  }
  want(c, EPOLLOUT);
}

static void fail(struct conn *c, enum err e, const char *what) {
  note_error(e, "%s", what);
  close_conn(c, 0);
  if (mode != M_IDLE && may_start()) start_conn(c);
  if (mode == M_IDLE) idle_failed++;
}

static void send_request(struct conn *c);

static void do_handshake(struct conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    if (phase == P_MEASURE) {
      handshakes_measured++;
      if (SSL_session_reused(c->ssl)) resumed_measured++;
    }
    c->woff = 0;
    c->t_req = now_us();
    c->deadline = c->t_req + (uint64_t)timeout_ms * 1000u;
    c->st = S_WRITE;
    send_request(c);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    want(c, EPOLLIN);
  else if (e == SSL_ERROR_WANT_WRITE)
    want(c, EPOLLOUT);
  else {
    char msg[200];
    snprintf(msg, sizeof msg, "TLS handshake failed: %s", ssl_err_text());
    fail(c, E_HANDSHAKE, msg);
  }
}

static void on_connected(struct conn *c) {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
  if (soerr) {
    char msg[160];
    snprintf(msg, sizeof msg, "connect: %s", strerror(soerr));
    fail(c, E_CONNECT, msg);
    return;
  }
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_app_data(c->ssl, c);
  if (mode == M_RESUME && c->sess) {
    if (single_use) {
      /* OpenSSL marks a TLS 1.3 session not resumable once used: without a newer ticket from the
       * previous connection, this one is a full handshake. */
      SSL_set_session(c->ssl, c->sess);
    } else {
      /* Offer the newest ticket; when the previous (resumed) connection got no new ticket, offer the
       * same one again, which a stateless-ticket server accepts. */
      SSL_SESSION *d = SSL_SESSION_dup(c->sess);
      SSL_set_session(c->ssl, d);
      SSL_SESSION_free(d);
    }
  }
  SSL_set_connect_state(c->ssl);
  c->st = S_HANDSHAKE;
  do_handshake(c);
}

static void send_request(struct conn *c) {
  ERR_clear_error();
  int r = SSL_write(c->ssl, request + c->woff, (int)(request_len - c->woff));
  if (r > 0) {
    c->woff += (size_t)r;
    if (c->woff < request_len) {
      want(c, EPOLLOUT);
      return;
    }
    c->st = S_READ;
    c->rlen = 0;
    want(c, EPOLLIN);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_WRITE)
    want(c, EPOLLOUT);
  else if (e == SSL_ERROR_WANT_READ)
    want(c, EPOLLIN);
  else {
    char msg[200];
    snprintf(msg, sizeof msg, "write: %s", ssl_err_text());
    fail(c, E_IO, msg);
  }
}

/* Parses c->rbuf. Returns 0 incomplete, 1 complete and correct, -1 wrong (error already noted via
 * *why and *kind). *close_after is set when the server announced it closes the connection. */
static int parse_response(struct conn *c, int *close_after, enum err *kind, char *why, size_t whylen) {
  char *buf = c->rbuf;
  size_t n = c->rlen;
  char *hend = memmem(buf, n, "\r\n\r\n", 4);
  if (!hend) {
    if (n > 16384) {
      *kind = E_PARSE;
      snprintf(why, whylen, "response headers larger than 16 KiB");
      return -1;
    }
    return 0;
  }
  size_t hlen = (size_t)(hend - buf) + 4;
  if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0) {
    *kind = E_PARSE;
    snprintf(why, whylen, "not an HTTP/1.x response: %.40s", buf);
    return -1;
  }
  int status = atoi(buf + 9);
  long clen = -1;
  int chunked = 0;
  *close_after = buf[7] == '0';
  for (char *line = memmem(buf, hlen, "\r\n", 2) + 2; line < hend;) {
    char *eol = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
    if (!eol) break;
    size_t ll = (size_t)(eol - line);
    if (ll > 15 && strncasecmp(line, "content-length:", 15) == 0)
      clen = strtol(line + 15, NULL, 10);
    else if (ll > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
      chunked = memmem(line, ll, "chunked", 7) != NULL;
    else if (ll > 11 && strncasecmp(line, "connection:", 11) == 0) {
      char tmp[64];
      size_t vl = ll - 11 < sizeof tmp - 1 ? ll - 11 : sizeof tmp - 1;
      memcpy(tmp, line + 11, vl);
      tmp[vl] = 0;
      if (strcasestr(tmp, "close")) *close_after = 1;
      if (strcasestr(tmp, "keep-alive")) *close_after = 0;
    }
    line = eol + 2;
  }
  const char *body;
  size_t blen;
  static char dechunk[65536];
  if (chunked) {
    size_t off = hlen, out = 0;
    for (;;) {
      char *eol = memmem(buf + off, n - off, "\r\n", 2);
      if (!eol) return 0;
      long sz = strtol(buf + off, NULL, 16);
      if (sz < 0 || sz > 60000) {
        *kind = E_PARSE;
        snprintf(why, whylen, "bad chunk size");
        return -1;
      }
      off = (size_t)(eol - buf) + 2;
      if (sz == 0) {
        /* no trailers expected: the final CRLF */
        if (n - off < 2) return 0;
        if (n - off > 2) {
          *kind = E_PARSE;
          snprintf(why, whylen, "bytes after the last chunk");
          return -1;
        }
        break;
      }
      if (n - off < (size_t)sz + 2) return 0;
      if (out + (size_t)sz > sizeof dechunk) {
        *kind = E_PARSE;
        snprintf(why, whylen, "body too large");
        return -1;
      }
      memcpy(dechunk + out, buf + off, (size_t)sz);
      out += (size_t)sz;
      off += (size_t)sz + 2;
    }
    body = dechunk;
    blen = out;
  } else {
    if (clen < 0) {
      *kind = E_PARSE;
      snprintf(why, whylen, "response without Content-Length or chunked encoding");
      return -1;
    }
    if (n < hlen + (size_t)clen) return 0;
    if (n > hlen + (size_t)clen) {
      *kind = E_PARSE;
      snprintf(why, whylen, "%zu unexpected bytes after the response", n - hlen - (size_t)clen);
      return -1;
    }
    body = buf + hlen;
    blen = (size_t)clen;
  }
  if (status != 200) {
    *kind = E_STATUS;
    snprintf(why, whylen, "HTTP %d: %.120s", status, body);
    for (char *p = why; *p; p++)
      if (*p == '\r' || *p == '\n') *p = ' ';
    return -1;
  }
  if (blen != expect_len || memcmp(body, expect_body, blen) != 0) {
    *kind = E_BODY;
    snprintf(why, whylen, "unexpected body (%zu bytes): %.60s", blen, body);
    return -1;
  }
  return 1;
}

static void record(uint64_t us) {
  if (nlat == latcap) {
    if (latcap >= 16u * 1024 * 1024) return;
    latcap = latcap ? latcap * 2 : 65536;
    lat = realloc(lat, latcap * sizeof *lat);
    if (!lat) {
      perror("realloc");
      exit(3);
    }
  }
  lat[nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void on_response(struct conn *c, int close_after) {
  uint64_t t = now_us();
  ok_total++;
  if (phase == P_MEASURE) {
    ok_measured++;
    record(t - (mode == M_KA ? c->t_req : c->t_conn));
  }
  if (mode == M_IDLE) {
    c->st = S_IDLE;
    c->deadline = UINT64_MAX;
    idle_established++;
    want(c, EPOLLIN);
    return;
  }
  if (mode == M_KA && !close_after) {
    if (!may_start()) {
      close_conn(c, 1);
      return;
    }
    c->woff = 0;
    c->t_req = t;
    c->deadline = t + (uint64_t)timeout_ms * 1000u;
    c->st = S_WRITE;
    send_request(c);
    return;
  }
  if (mode == M_KA) reconnects++;
  close_conn(c, 1);
  if (may_start()) start_conn(c);
}

static void do_read(struct conn *c) {
  for (;;) {
    if (c->rcap - c->rlen < 4096) {
      size_t ncap = c->rcap ? c->rcap * 2 : 8192;
      if (ncap > 1u << 20) {
        fail(c, E_PARSE, "response larger than 1 MiB");
        return;
      }
      c->rbuf = realloc(c->rbuf, ncap);
      if (!c->rbuf) {
        perror("realloc");
        exit(3);
      }
      c->rcap = ncap;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen - 1));
    if (r > 0) {
      if (c->st == S_IDLE) {
        fail(c, E_IO, "data on an idle connection");
        return;
      }
      c->rlen += (size_t)r;
      c->rbuf[c->rlen] = 0;
      int close_after = 0;
      enum err kind = E_PARSE;
      char why[200];
      int p = parse_response(c, &close_after, &kind, why, sizeof why);
      if (p < 0) {
        fail(c, kind, why);
        return;
      }
      if (p > 0) {
        on_response(c, close_after);
        return;
      }
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      want(c, EPOLLIN);
      return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      want(c, EPOLLOUT);
      return;
    }
    if (c->st == S_IDLE) {
      idle_dropped++;
      idle_established--;
      close_conn(c, 0);
      return;
    }
    char msg[200];
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
      snprintf(msg, sizeof msg, "the server closed the connection after %zu bytes of a response",
               c->rlen);
    else
      snprintf(msg, sizeof msg, "read: %s", ssl_err_text());
    fail(c, e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? E_CLOSED : E_IO, msg);
    return;
  }
}

static void on_event(struct conn *c) {
  switch (c->st) {
  case S_CONNECTING:
    on_connected(c);
    break;
  case S_HANDSHAKE:
    do_handshake(c);
    break;
  case S_WRITE:
    send_request(c);
    break;
  case S_READ:
  case S_IDLE:
    do_read(c);
    break;
  case S_FREE:
    break;
  }
}

static void check_timeouts(uint64_t t) {
  for (int i = 0; i < nconns; i++) {
    struct conn *c = &conns[i];
    if (c->st != S_FREE && c->st != S_IDLE && t > c->deadline) {
      char msg[80];
      snprintf(msg, sizeof msg, "no answer within %ld ms", timeout_ms);
      fail(c, E_TIMEOUT, msg);
    }
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  if (!nlat) return 0;
  size_t i = (size_t)(p * (double)(nlat - 1) + 0.5);
  return lat[i];
}

static double cpu_s(const struct rusage *r) {
  return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
         (double)r->ru_stime.tv_usec / 1e6;
}

static const char *MODE_NAMES[] = {"ka", "hs", "resume", "idle"};

static void print_errors(FILE *f) {
  fprintf(f, "\"errors\":%ld,\"errorKinds\":{", errors_total);
  int first = 1;
  for (int i = 0; i < E_COUNT; i++)
    if (errors[i]) {
      fprintf(f, "%s\"%s\":%ld", first ? "" : ",", ERR_NAMES[i], errors[i]);
      first = 0;
    }
  fprintf(f, "},\"firstError\":");
  json_str(f, first_error);
}

static void report(void) {
  qsort(lat, nlat, sizeof *lat, cmp_u32);
  double secs = (double)(t_measure1 - t_measure0) / 1e6;
  double cpu = cpu_s(&ru1) - cpu_s(&ru0);
  printf("{\"mode\":\"%s\",\"concurrency\":%d,\"ok\":%ld,\"seconds\":%.3f,\"rate\":%.1f,", MODE_NAMES[mode],
         concurrency, ok_measured, secs, secs > 0 ? (double)ok_measured / secs : 0.0);
  printf("\"p50Us\":%.0f,\"p90Us\":%.0f,\"p99Us\":%.0f,\"maxUs\":%.0f,", pct(0.5), pct(0.9), pct(0.99),
         nlat ? (double)lat[nlat - 1] : 0.0);
  printf("\"connections\":%ld,\"handshakes\":%ld,\"resumed\":%ld,\"reconnects\":%ld,\"okTotal\":%ld,",
         conns_opened_measured, handshakes_measured, resumed_measured, reconnects, ok_total);
  printf("\"ticketsOnResumed\":%ld,", tickets_on_resumed);
  printf("\"cpuSeconds\":%.3f,\"cpuPct\":%.1f,\"aborted\":%s,", cpu, secs > 0 ? 100.0 * cpu / secs : 0.0,
         aborted ? "true" : "false");
  print_errors(stdout);
  printf("}\n");
  fflush(stdout);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode ka|hs|resume|idle --port P --cert CHAIN --key KEY --body TEXT\n"
          "  [--host 127.0.0.1] [--path /] [--ca CA.pem (verify the server)] [--concurrency N]\n"
          "  [--warmup-ms 1000] [--duration-ms 5000] [--max-requests N] [--timeout-ms 10000]\n"
          "  [--max-errors 1000] [--single-use-tickets] (resume)\n"
          "  [--conns 10000 --open-ms 60000 --hold-ms 30000] (idle)\n");
  exit(2);
}

static void raise_nofile(long need) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if ((long)rl.rlim_cur >= need) return;
  struct rlimit want_rl = {(rlim_t)need, (rlim_t)need > rl.rlim_max ? (rlim_t)need : rl.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &want_rl) != 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"mode", 1, 0, 'm'},        {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
      {"cert", 1, 0, 'c'},        {"key", 1, 0, 'k'},         {"ca", 1, 0, 'a'},
      {"path", 1, 0, 'P'},        {"body", 1, 0, 'b'},        {"concurrency", 1, 0, 'n'},
      {"warmup-ms", 1, 0, 'w'},   {"duration-ms", 1, 0, 'd'}, {"max-requests", 1, 0, 'r'},
      {"timeout-ms", 1, 0, 't'},  {"max-errors", 1, 0, 'e'},  {"conns", 1, 0, 'C'},
      {"hold-ms", 1, 0, 'h'},     {"open-ms", 1, 0, 'o'},     {"single-use-tickets", 0, 0, 'S'},
      {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'm':
      mode = !strcmp(optarg, "ka")       ? M_KA
             : !strcmp(optarg, "hs")     ? M_HS
             : !strcmp(optarg, "resume") ? M_RESUME
             : !strcmp(optarg, "idle")   ? M_IDLE
                                         : (usage(), M_KA);
      break;
    case 'H': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'c': cert_file = optarg; break;
    case 'k': key_file = optarg; break;
    case 'a': ca_file = optarg; break;
    case 'P': path = optarg; break;
    case 'b': body_arg = optarg; break;
    case 'n': concurrency = atoi(optarg); break;
    case 'w': warmup_ms = atol(optarg); break;
    case 'd': duration_ms = atol(optarg); break;
    case 'r': max_requests = atol(optarg); break;
    case 't': timeout_ms = atol(optarg); break;
    case 'e': max_errors = atol(optarg); break;
    case 'C': conns_target = atoi(optarg); break;
    case 'h': hold_ms = atol(optarg); break;
    case 'o': open_ms = atol(optarg); break;
    case 'S': single_use = 1; break;
    default: usage();
    }
  }
  if (!port || !cert_file || !key_file || !body_arg || concurrency < 1 || concurrency > 100000 ||
      conns_target < 1 || conns_target > 100000)
    usage();
  /* Bounds: nothing runs for more than a few minutes whatever the arguments. */
  if (warmup_ms > 60000) warmup_ms = 60000;
  if (duration_ms > 120000) duration_ms = 120000;
  if (hold_ms > 300000) hold_ms = 300000;
  if (open_ms > 300000) open_ms = 300000;
  if (timeout_ms > 60000) timeout_ms = 60000;
  expect_body = body_arg;
  expect_len = strlen(body_arg);
  signal(SIGPIPE, SIG_IGN);

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: --host must be an IPv4 literal\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request,
                                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: mtlskit-bench-loadgen\r\n%s\r\n",
                                 path, host, port,
                                 mode == M_HS || mode == M_RESUME ? "Connection: close\r\n" : "");

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "loadgen: cannot load the client certificate/key: %s\n", ssl_err_text());
    return 2;
  }
  if (ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
      fprintf(stderr, "loadgen: cannot load %s: %s\n", ca_file, ssl_err_text());
      return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), host);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | (mode == M_IDLE ? SSL_MODE_RELEASE_BUFFERS : 0));
  if (mode == M_RESUME) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  } else {
    /* No session is ever offered: every handshake is a full one. (A TLS 1.3 server still sends its
     * tickets; they are read and dropped.) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }

  nconns = mode == M_IDLE ? conns_target : concurrency;
  raise_nofile(nconns + 64);
  conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) conns[i].fd = -1;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event evs[512];

  t_start = now_us();
  if (mode == M_IDLE) {
    /* ---------------------------------------------------------------- idle: open, hold, report */
    phase = P_WARMUP;
    uint64_t open_end = t_start + (uint64_t)open_ms * 1000u;
    uint64_t last_scan = t_start;
    while (idle_established + idle_failed < conns_target && !aborted) {
      while (active - idle_established < concurrency && idle_next < conns_target) {
        conns[idle_next].started = 1;
        start_conn(&conns[idle_next++]);
      }
      int n = epoll_wait(epfd, evs, 512, 50);
      for (int i = 0; i < n; i++) on_event(&conns[evs[i].data.u32]);
      uint64_t t = now_us();
      if (t - last_scan > 50000) {
        check_timeouts(t);
        last_scan = t;
      }
      if (t > open_end) break;
    }
    uint64_t opened = now_us();
    printf("{\"held\":%d,\"target\":%d,\"openMs\":%.0f,\"droppedWhileOpening\":%d,", idle_established,
           conns_target, (double)(opened - t_start) / 1000.0, idle_dropped);
    print_errors(stdout);
    printf("}\n");
    fflush(stdout);
    struct epoll_event se = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &se);
    int dropped_before = idle_dropped;
    uint64_t hold_end = opened + (uint64_t)hold_ms * 1000u;
    int stop = 0;
    while (!stop && now_us() < hold_end) {
      int n = epoll_wait(epfd, evs, 512, 100);
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == UINT32_MAX) {
          stop = 1; /* a line or EOF on stdin: the caller has measured */
          continue;
        }
        on_event(&conns[evs[i].data.u32]);
      }
    }
    printf("{\"heldAtEnd\":%d,\"droppedWhileHeld\":%d,\"holdMs\":%.0f}\n", idle_established,
           idle_dropped - dropped_before, (double)(now_us() - opened) / 1000.0);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
      if (conns[i].st != S_FREE) close_conn(&conns[i], 1);
    return 0;
  }

  /* ------------------------------------------------------------------ closed loop: ka, hs, resume */
  for (int i = 0; i < nconns; i++) start_conn(&conns[i]);
  uint64_t warm_end = t_start + (uint64_t)warmup_ms * 1000u;
  uint64_t last_scan = t_start;
  if (warmup_ms <= 0) {
    phase = P_MEASURE;
    t_measure0 = t_start;
    getrusage(RUSAGE_SELF, &ru0);
  }
  while (phase != P_DONE) {
    int n = epoll_wait(epfd, evs, 512, 20);
    for (int i = 0; i < n && phase != P_DONE; i++) on_event(&conns[evs[i].data.u32]);
    uint64_t t = now_us();
    if (phase == P_WARMUP && t >= warm_end) {
      phase = P_MEASURE;
      t_measure0 = t;
      getrusage(RUSAGE_SELF, &ru0);
    }
    if (phase == P_MEASURE &&
        (t >= t_measure0 + (uint64_t)duration_ms * 1000u || ok_measured >= max_requests)) {
      phase = P_DRAIN;
      t_measure1 = t;
      getrusage(RUSAGE_SELF, &ru1);
      t_drain_end = t + (uint64_t)drain_ms * 1000u;
    }
    if (phase == P_DRAIN && (active == 0 || t >= t_drain_end)) phase = P_DONE;
    if (t - last_scan > 50000) {
      check_timeouts(t);
      last_scan = t;
    }
  }
  if (!t_measure1) {
    /* aborted on errors */
    t_measure1 = now_us();
    if (!t_measure0) t_measure0 = t_measure1;
    getrusage(RUSAGE_SELF, &ru1);
  }
  for (int i = 0; i < nconns; i++)
    if (conns[i].st != S_FREE) close_conn(&conns[i], 1);
  report();
  return 0;
}
