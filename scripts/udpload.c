/*
 * udpload.c - UDP load generator, UDP echo server and DNS load generator for
 * scripts/bench (the udp and dns workloads).
 *
 * Build:  gcc -O2 -o udpload udpload.c
 *
 * Echo server (single thread, recvmmsg/sendmmsg in batches of 64, binds
 * 127.0.0.1 only):
 *   udpload echo PORT [MAX_SECONDS]
 *     Sends every datagram back to where it came from, unchanged. Exits on
 *     SIGTERM/SIGINT or after MAX_SECONDS (default 7200). Prints
 *     "ready PORT" on stdout once bound.
 *
 * Client (single thread, poll over FLOWS sockets):
 *   udpload client PORT SECONDS WINDOW SIZE [FLOWS]
 *     Each flow is a socket of its own (so a client address of its own)
 *     connected to 127.0.0.1:PORT, and keeps WINDOW datagrams of SIZE bytes
 *     (at least 16) in flight: every datagram carries its slot in the window
 *     and a sequence number, and a reply that matches the slot's current
 *     sequence number frees the slot for the next datagram. A datagram not
 *     answered within 200 ms counts as lost and its slot is reused, so a loss
 *     never stalls the window. Replies to datagrams already given up are
 *     counted as late and otherwise ignored. Runs for SECONDS (FLOWS
 *     default 1), then prints one JSON object on stdout: answered
 *     datagrams per second ("dps"), sent, received, lost, late, errors
 *     (failed sends and receives, such as ECONNREFUSED while nothing
 *     listens), and the p50/p99 round-trip latency in microseconds.
 *
 * DNS client (the same window, over DNS queries):
 *   udpload dns PORT SECONDS WINDOW NAMEFILE [FLOWS [MAX_QUERIES]]
 *     NAMEFILE has one query per line, "NAME TYPE" (TYPE: A, AAAA, MX, TXT,
 *     NS, CNAME, SOA, PTR, SRV, ANY or a number; class IN); names are sent
 *     as written, with RD set, a random transaction id per query and the
 *     queries taken in file order, round robin. A reply must carry the id
 *     of a query in flight on its flow, QR set and the query's question
 *     byte for byte; else it counts as mismatched. Replies are counted by
 *     rcode (NOERROR, NXDOMAIN, other) and NOERROR replies without answers
 *     as nodata. A query unanswered after 200 ms counts as lost and is sent
 *     again with a new id. MAX_QUERIES > 0 stops the run once that many
 *     queries have been answered (and sends no more than that many new
 *     ones): with WINDOW 1, FLOWS 1 and MAX_QUERIES = the number of lines,
 *     every query of the file is asked exactly once, in order. Prints one
 *     JSON object on stdout ("qps": answered queries per second).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DGRAM 2048
#define LOSS_TIMEOUT_NS 200000000LL
#define HIST_US 200001 /* 1 us buckets up to the loss timeout */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void big_buffers(int fd) {
    int sz = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

/* -------------------------------------------------------------- echo server */

static int run_echo(int port, double max_seconds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); return 1; }
    big_buffers(fd);
    struct sockaddr_in a = loopback(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    struct timeval tv = {0, 200000}; /* wake up to check the signal and the deadline */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    printf("ready %d\n", port);
    fflush(stdout);

    static char bufs[BATCH][MAX_DGRAM];
    static struct sockaddr_in addrs[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    int64_t deadline = now_ns() + (int64_t)(max_seconds * 1e9);
    while (!g_stop && now_ns() < deadline) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = MAX_DGRAM;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        /* Block for the first datagram, then take what else is queued. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
        for (int off = 0, tries = 0; off < n && tries < 100; tries++) {
            int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
            if (s < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS) continue;
                off++; /* e.g. ECONNREFUSED from an earlier send: skip that one */
                continue;
            }
            off += s;
        }
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------ shared client */

static uint32_t *g_hist;
static uint64_t g_samples;

static void record_latency(int64_t ns) {
    int64_t us = ns / 1000;
    if (us < 0) us = 0;
    if (us >= HIST_US) us = HIST_US - 1;
    g_hist[us]++;
    g_samples++;
}

static double percentile_us(double p) {
    if (g_samples == 0) return 0.0;
    uint64_t want = (uint64_t)(p * (double)g_samples);
    if (want >= g_samples) want = g_samples - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_US; i++) {
        seen += g_hist[i];
        if (seen > want) return (double)i;
    }
    return (double)(HIST_US - 1);
}

static uint64_t g_rng;
static uint32_t rnd32(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static int open_flow(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    big_buffers(fd);
    struct sockaddr_in a = loopback(port);
    struct sockaddr_in src = loopback(0);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { perror("bind"); exit(1); }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); exit(1); }
    return fd;
}

struct slot {
    uint32_t seq;      /* echo: the datagram's sequence number */
    uint16_t id;       /* dns: the query's transaction id */
    uint32_t query;    /* dns: index of the query */
    int active;
    int queued;        /* waiting in the flow's pending list */
    int64_t sent_ns;
};

struct flow {
    int fd;
    struct slot *slots;
    int32_t *by_id;    /* dns: transaction id -> slot, or -1 */
    int *pending;      /* slots to (re)send, each at most once */
    int npending;
};

struct counts {
    uint64_t sent, received, lost, late, errors, mismatched;
    uint64_t noerror, nxdomain, other_rcode, nodata;
};

/* ---------------------------------------------------------------- queries */

struct query {
    unsigned char *wire; /* the whole query, id bytes zero */
    int len;
    int qlen;            /* length of the question section */
};

static int qtype_code(const char *t) {
    static const struct { const char *name; int code; } types[] = {
        {"A", 1}, {"NS", 2}, {"CNAME", 5}, {"SOA", 6}, {"PTR", 12}, {"MX", 15}, {"TXT", 16},
        {"AAAA", 28}, {"SRV", 33}, {"ANY", 255}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(t, types[i].name) == 0) return types[i].code;
    if (isdigit((unsigned char)t[0])) return atoi(t);
    return -1;
}

static int encode_query(const char *name, int qtype, struct query *q) {
    unsigned char buf[512];
    int n = 0;
    memset(buf, 0, 12);
    buf[2] = 0x01; /* RD */
    buf[5] = 1;    /* QDCOUNT */
    n = 12;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len > 63 || n + (int)len + 6 > (int)sizeof buf) return -1;
        buf[n++] = (unsigned char)len;
        memcpy(buf + n, p, len);
        n += (int)len;
        if (!dot) break;
        p = dot + 1;
    }
    buf[n++] = 0;
    buf[n++] = (unsigned char)(qtype >> 8);
    buf[n++] = (unsigned char)qtype;
    buf[n++] = 0;
    buf[n++] = 1; /* IN */
    q->wire = malloc((size_t)n);
    if (!q->wire) return -1;
    memcpy(q->wire, buf, (size_t)n);
    q->len = n;
    q->qlen = n - 12;
    return 0;
}

static struct query *read_queries(const char *path, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(1); }
    int cap = 64, n = 0;
    struct query *qs = malloc(sizeof *qs * (size_t)cap);
    char line[512];
    for (int lineno = 1; fgets(line, sizeof line, f) && lineno < 1000000; lineno++) {
        char name[300], type[32];
        if (line[0] == '#' || sscanf(line, "%299s %31s", name, type) != 2) continue;
        size_t nl = strlen(name);
        if (nl > 1 && name[nl - 1] == '.') name[nl - 1] = 0;
        int code = qtype_code(type);
        if (code < 0 || code > 65535) {
            fprintf(stderr, "%s:%d: unknown type %s\n", path, lineno, type);
            exit(1);
        }
        if (n == cap) {
            cap *= 2;
            qs = realloc(qs, sizeof *qs * (size_t)cap);
        }
        if (!qs || encode_query(name, code, &qs[n]) < 0) {
            fprintf(stderr, "%s:%d: cannot encode %s\n", path, lineno, name);
            exit(1);
        }
        n++;
    }
    fclose(f);
    if (n == 0) { fprintf(stderr, "%s: no queries\n", path); exit(1); }
    *count = n;
    return qs;
}

/* ---------------------------------------------------------------- the loop */

static int run_client(int dns, int port, double seconds, int window, int size, int nflows,
                      const char *namefile, uint64_t max_queries) {
    signal(SIGPIPE, SIG_IGN);
    g_rng = ((uint64_t)now_ns() ^ ((uint64_t)getpid() << 32)) | 1;
    g_hist = calloc(HIST_US, sizeof *g_hist);
    struct flow *flows = calloc((size_t)nflows, sizeof *flows);
    struct pollfd *pfds = calloc((size_t)nflows, sizeof *pfds);
    if (!g_hist || !flows || !pfds) { perror("calloc"); return 1; }
    struct query *queries = NULL;
    int nqueries = 0;
    uint64_t next_query = 0, issued = 0;
    if (dns) queries = read_queries(namefile, &nqueries);

    for (int f = 0; f < nflows; f++) {
        flows[f].fd = open_flow(port);
        flows[f].slots = calloc((size_t)window, sizeof *flows[f].slots);
        flows[f].pending = calloc((size_t)window, sizeof *flows[f].pending);
        if (!flows[f].slots || !flows[f].pending) { perror("calloc"); return 1; }
        if (dns) {
            flows[f].by_id = malloc(65536 * sizeof *flows[f].by_id);
            if (!flows[f].by_id) { perror("malloc"); return 1; }
            for (int i = 0; i < 65536; i++) flows[f].by_id[i] = -1;
        }
        pfds[f].fd = flows[f].fd;
        pfds[f].events = POLLIN;
    }

    struct counts c;
    memset(&c, 0, sizeof c);
    static unsigned char sbuf[BATCH][MAX_DGRAM];
    static unsigned char rbuf[BATCH][MAX_DGRAM];
    static struct iovec siov[BATCH], riov[BATCH];
    static struct mmsghdr smsg[BATCH], rmsg[BATCH];

    /* Fill a slot with its next datagram (a retry keeps a DNS slot's query). */
    #define PREPARE(fl, s, retry) do { \
        struct slot *sl_ = &(fl)->slots[s]; \
        if (dns) { \
            if (sl_->active) (fl)->by_id[sl_->id] = -1; \
            if (!(retry)) sl_->query = (uint32_t)(next_query++ % (uint64_t)nqueries); \
            uint16_t id_; \
            for (int t_ = 0;; t_++) { id_ = (uint16_t)rnd32(); if ((fl)->by_id[id_] < 0 || t_ > 100000) break; } \
            sl_->id = id_; \
            (fl)->by_id[id_] = (s); \
        } else { \
            sl_->seq++; \
        } \
        sl_->active = 1; \
        sl_->queued = 1; \
        (fl)->pending[(fl)->npending++] = (s); \
    } while (0)

    int64_t start = now_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    int64_t next_check = start + 10000000LL;
    int done = 0;

    /* Fill every window. */
    for (int f = 0; f < nflows; f++) {
        for (int s = 0; s < window; s++) {
            if (dns && max_queries && issued >= max_queries) break;
            PREPARE(&flows[f], s, 0);
            issued++;
        }
    }

    for (uint64_t iter = 0; !done && !g_stop; iter++) {
        /* Send what is pending on every flow, in batches. */
        for (int f = 0; f < nflows; f++) {
            struct flow *fl = &flows[f];
            int n = fl->npending;
            if (n == 0) continue;
            if (n > BATCH) n = BATCH;
            int64_t t = now_ns();
            for (int i = 0; i < n; i++) {
                int s = fl->pending[i];
                struct slot *sl = &fl->slots[s];
                unsigned char *b = sbuf[i];
                int len;
                if (dns) {
                    struct query *q = &queries[sl->query];
                    memcpy(b, q->wire, (size_t)q->len);
                    b[0] = (unsigned char)(sl->id >> 8);
                    b[1] = (unsigned char)sl->id;
                    len = q->len;
                } else {
                    memset(b, 'x', (size_t)size);
                    uint32_t slot32 = (uint32_t)s, seq = sl->seq;
                    int64_t fno = f;
                    memcpy(b, &slot32, 4);
                    memcpy(b + 4, &seq, 4);
                    memcpy(b + 8, &fno, 8);
                    len = size;
                }
                sl->sent_ns = t;
                sl->queued = 0;
                siov[i].iov_base = b;
                siov[i].iov_len = (size_t)len;
                memset(&smsg[i].msg_hdr, 0, sizeof smsg[i].msg_hdr);
                smsg[i].msg_hdr.msg_iov = &siov[i];
                smsg[i].msg_hdr.msg_iovlen = 1;
            }
            int off = 0;
            for (int tries = 0; off < n && tries < 4; tries++) {
                int r = sendmmsg(fl->fd, smsg + off, (unsigned)(n - off), 0);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    c.errors++;  /* the slot times out and is sent again */
                    off++;
                    continue;
                }
                c.sent += (uint64_t)r;
                off += r;
            }
            memmove(fl->pending, fl->pending + n, sizeof(int) * (size_t)(fl->npending - n));
            fl->npending -= n;
        }

        int more = 0;
        for (int f = 0; f < nflows; f++) more |= flows[f].npending > 0;
        int r = poll(pfds, (nfds_t)nflows, more ? 0 : 10);
        int64_t t = now_ns();
        if (t >= end) break;
        if (r > 0) {
            for (int f = 0; f < nflows; f++) {
                if (!(pfds[f].revents & (POLLIN | POLLERR))) continue;
                struct flow *fl = &flows[f];
                for (int i = 0; i < BATCH; i++) {
                    riov[i].iov_base = rbuf[i];
                    riov[i].iov_len = MAX_DGRAM;
                    memset(&rmsg[i].msg_hdr, 0, sizeof rmsg[i].msg_hdr);
                    rmsg[i].msg_hdr.msg_iov = &riov[i];
                    rmsg[i].msg_hdr.msg_iovlen = 1;
                }
                int n = recvmmsg(fl->fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
                if (n < 0) {
                    if (errno != EAGAIN && errno != EINTR) c.errors++;
                    continue;
                }
                t = now_ns();
                for (int i = 0; i < n; i++) {
                    unsigned char *b = rbuf[i];
                    int len = (int)rmsg[i].msg_len;
                    int s = -1;
                    if (dns) {
                        if (len < 12) { c.mismatched++; continue; }
                        uint16_t id = (uint16_t)(b[0] << 8 | b[1]);
                        s = fl->by_id[id];
                        if (s < 0) { c.late++; continue; }
                        struct slot *sl = &fl->slots[s];
                        struct query *q = &queries[sl->query];
                        int qd = b[4] << 8 | b[5];
                        if (!(b[2] & 0x80) || qd != 1 || len < 12 + q->qlen ||
                            memcmp(b + 12, q->wire + 12, (size_t)q->qlen) != 0) {
                            c.mismatched++;
                            continue; /* the slot times out and is asked again */
                        }
                        int rcode = b[3] & 0x0f;
                        int an = b[6] << 8 | b[7];
                        if (rcode == 0) {
                            c.noerror++;
                            if (an == 0) c.nodata++;
                        } else if (rcode == 3) {
                            c.nxdomain++;
                        } else {
                            c.other_rcode++;
                        }
                        fl->by_id[id] = -1;
                    } else {
                        if (len < 16) { c.mismatched++; continue; }
                        uint32_t slot32, seq;
                        memcpy(&slot32, b, 4);
                        memcpy(&seq, b + 4, 4);
                        if (slot32 >= (uint32_t)window) { c.mismatched++; continue; }
                        s = (int)slot32;
                        struct slot *sl = &fl->slots[s];
                        if (!sl->active || sl->seq != seq) { c.late++; continue; }
                        if (len != size) { c.mismatched++; continue; }
                    }
                    struct slot *sl = &fl->slots[s];
                    record_latency(t - sl->sent_ns);
                    sl->active = 0;
                    c.received++;
                    if (dns && max_queries) {
                        if (c.received >= max_queries) { done = 1; break; }
                        if (issued >= max_queries) continue;
                    }
                    PREPARE(fl, s, 0);
                    issued++;
                }
                if (done) break;
            }
        }
        if (t >= next_check) {
            /* Give up on datagrams unanswered for too long; send their slots again. */
            next_check = t + 10000000LL;
            for (int f = 0; f < nflows; f++) {
                struct flow *fl = &flows[f];
                for (int s = 0; s < window; s++) {
                    struct slot *sl = &fl->slots[s];
                    if (!sl->active || sl->queued || t - sl->sent_ns < LOSS_TIMEOUT_NS) continue;
                    c.lost++;
                    PREPARE(fl, s, 1);
                }
            }
        }
        (void)iter;
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    double rate = elapsed > 0 ? (double)c.received / elapsed : 0.0;
    if (dns) {
        printf("{\"mode\": \"dns\", \"seconds\": %.4f, \"flows\": %d, \"window\": %d, \"queries\": %d, "
               "\"qps\": %.1f, \"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"late\": %llu, "
               "\"mismatched\": %llu, \"errors\": %llu, \"noerror\": %llu, \"nxdomain\": %llu, "
               "\"other_rcode\": %llu, \"nodata\": %llu, \"p50_us\": %.0f, \"p99_us\": %.0f}\n",
               elapsed, nflows, window, nqueries, rate, (unsigned long long)c.sent,
               (unsigned long long)c.received, (unsigned long long)c.lost, (unsigned long long)c.late,
               (unsigned long long)c.mismatched, (unsigned long long)c.errors,
               (unsigned long long)c.noerror, (unsigned long long)c.nxdomain,
               (unsigned long long)c.other_rcode, (unsigned long long)c.nodata,
               percentile_us(0.50), percentile_us(0.99));
    } else {
        printf("{\"mode\": \"client\", \"seconds\": %.4f, \"flows\": %d, \"window\": %d, \"size\": %d, "
               "\"dps\": %.1f, \"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"late\": %llu, "
               "\"mismatched\": %llu, \"errors\": %llu, \"p50_us\": %.0f, \"p99_us\": %.0f}\n",
               elapsed, nflows, window, size, rate, (unsigned long long)c.sent,
               (unsigned long long)c.received, (unsigned long long)c.lost, (unsigned long long)c.late,
               (unsigned long long)c.mismatched, (unsigned long long)c.errors,
               percentile_us(0.50), percentile_us(0.99));
    }
    return 0;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s echo PORT [MAX_SECONDS]\n"
            "       %s client PORT SECONDS WINDOW SIZE [FLOWS]\n"
            "       %s dns PORT SECONDS WINDOW NAMEFILE [FLOWS [MAX_QUERIES]]\n",
            argv0, argv0, argv0);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "echo") == 0) {
        int port = atoi(argv[2]);
        double maxs = argc >= 4 ? atof(argv[3]) : 7200.0;
        if (port <= 0 || port > 65535 || !(maxs > 0)) { usage(argv[0]); return 2; }
        return run_echo(port, maxs);
    }
    if (argc >= 6 && (strcmp(argv[1], "client") == 0 || strcmp(argv[1], "dns") == 0)) {
        int dns = strcmp(argv[1], "dns") == 0;
        int port = atoi(argv[2]);
        double seconds = atof(argv[3]);
        int window = atoi(argv[4]);
        int size = dns ? 0 : atoi(argv[5]);
        int flows = argc >= 7 ? atoi(argv[6]) : 1;
        long long maxq = dns && argc >= 8 ? atoll(argv[7]) : 0;
        if (port <= 0 || port > 65535 || !(seconds > 0) || window < 1 || window > 65536 ||
            flows < 1 || flows > 1024 || maxq < 0 || (!dns && (size < 16 || size > MAX_DGRAM)) ||
            (dns && window > 4096)) {
            usage(argv[0]);
            return 2;
        }
        return run_client(dns, port, seconds, window, size, flows, dns ? argv[5] : NULL,
                          (uint64_t)maxq);
    }
    usage(argv[0]);
    return 2;
}
