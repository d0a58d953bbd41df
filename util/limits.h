/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Every named limit on input, output and resources, in one place
 * (STYLE rule 6, DESIGN 6.4). Check a limit before allocating for it.
 */
#ifndef UTIL_LIMITS_H
#define UTIL_LIMITS_H

/* SPEC A1.8: largest socketmap request payload we accept. */
#define LIM_NETSTRING_MAX 10000
/* SPEC A1.1: leading zeros are accepted, but the length has at most this
 * many digits, so "000…0005:" cannot make us scan forever. */
#define LIM_NETSTRING_DIGITS 10
/* SPEC A1.3: largest socketmap reply payload Postfix accepts. */
#define LIM_REPLY_MAX 100000
/* SPEC A2.16: an A-label host name is at most 253 octets. */
#define LIM_DOMAIN_MAX 253
/* Longest label, RFC 1035. */
#define LIM_LABEL_MAX 63
/* A key (next hop) in U-label form may be longer than its A-label form. */
#define LIM_KEY_MAX 1024
/* JSON-lines protocol: longest request line, reply line. */
#define LIM_QUERY_LINE	4096
#define LIM_QUERY_REPLY 65536
/* RFC 8461 §3.3: suggested policy size limit (also [sts] max_policy_size). */
#define LIM_POLICY_BODY 65536
/* Most mx patterns kept from one policy. */
#define LIM_MX_PATTERNS 64
/* TLS-RPT datagram. */
#define LIM_DATAGRAM 65536
/* MX hosts examined per domain (DANE), CNAME depth followed. */
#define LIM_MX_HOSTS	16
#define LIM_CNAME_DEPTH 8
/* Domains being resolved at once (DANE and MTA-STS together). */
#define LIM_RESOLUTIONS 1024
/* Replies one connection may owe (lookups pending, or answered behind a
 * pending one) before we stop taking its requests. */
#define LIM_CONN_PENDING 256
/* Output queued to one client before we stop reading its requests. */
#define LIM_CONN_OUTPUT 262144
/* Map names configured at most; longest map name. */
#define LIM_MAP_NAMES 16
#define LIM_MAP_NAME  64
/* Static [policy] entries. */
#define LIM_STATIC_POLICIES 100000
/* Longest answer text stored for one domain. */
#define LIM_ANSWER_MAX 8192
/* Longest config line / value. */
#define LIM_CONFIG_VALUE 4096
/* Listening endpoints. */
#define LIM_LISTENERS 16
/* Connections to the admin socket at once (tlspolicy runs). */
#define LIM_ADMIN_CONNECTIONS 16
/* Connections to the metrics endpoint at once (Prometheus scrapes). */
#define LIM_METRICS_CONNECTIONS 8
/* Longest HTTP request the metrics endpoint reads (line and headers). */
#define LIM_HTTP_REQUEST 8192

/*
 * File descriptors kept free for outbound work (issue 10 item 3), so that
 * clients can never take the sockets DNS and HTTPS need: client
 * connections get what RLIMIT_NOFILE leaves after these. DNS: getdns gets
 * at most 64 queries at once (net/dns.c DNS_MAX_ACTIVE), each a UDP socket
 * and perhaps a TCP one, plus the resolver's own; HTTPS: one socket per
 * active transfer (net/https.h HTTPS_MAX_ACTIVE) plus a second address
 * tried, bounded by curl's connection cache; TLS-RPT: the sender's
 * sendmail pipes and POSTs (tlsrpt/rpt_deliver.h RPT_DELIVER_ACTIVE);
 * BASE: the stores with their -wal/-shm files, the log, signals, the
 * datagram socket, the mail log, the listeners.
 */
#define LIM_FD_DNS    (2 * 64 + 16)
#define LIM_FD_HTTPS  (128 + 32)
#define LIM_FD_TLSRPT (2 * 32 + 8)
#define LIM_FD_BASE   32

/* TLS-RPT (tlsrpt/, SPEC C1, C2, C3): policies in one datagram; failure
 * details in one policy; policy-string and mx-host entries in one policy;
 * longest string field of a datagram. */
#define LIM_RPT_POLICIES 16
#define LIM_RPT_DETAILS	 64
#define LIM_RPT_STRINGS	 128
#define LIM_RPT_FIELD	 2048
/* rua URIs kept from one _smtp._tls record, longest URI, longest record
 * (all TXT strings concatenated), TXT records considered for one name. */
#define LIM_RPT_RUA	    4
#define LIM_RPT_URI	    512
#define LIM_RPT_RECORD	    4096
#define LIM_RPT_TXT_RECORDS 32
/* Postfix log follower: longest log line looked at; smtp(8) processes
 * tracked at once; TLS sessions pending per process before its to= line;
 * seconds a pending session may wait for its to= line. */
#define LIM_RPT_LOG_LINE    8192
#define LIM_RPT_LOG_PIDS    1024
#define LIM_RPT_LOG_PENDING 16
#define LIM_RPT_LOG_AGE	    3600
/* Logged sessions waiting at once for their domain's policy to be read
 * from a shared store (the reads' own bound, LIM_PG_READ_WAIT). */
#define LIM_RPT_LOG_WAIT 1024
/* Seconds such a session waits for a store that could not be reached
 * before it is counted under no policy. */
#define LIM_RPT_LOG_RETRY_S 120
/* The datagram receiver thread (tlsrpt/rpt_recv.c): bytes of datagrams
 * held in each half of its buffer while the loop is busy (about 30,000
 * of Postfix's, over half a second at 50,000/s); datagrams received per
 * wake before it looks for a stop request. */
#define LIM_RPT_RECV_BYTES (8 * 1024 * 1024)
#define LIM_RPT_RECV_BURST 4096
/* Its nice value where it may lower it (root, CAP_SYS_NICE, LimitNICE=). */
#define LIM_RPT_RECV_NICE -10
/* Stored policies read into the memory index at start-up: for up to
 * LIM_WARM_FIRST_MS before the daemon is ready (about 100,000 rows on a
 * small machine, the default memory_entries), then LIM_WARM_BATCH per
 * loop turn (daemon/main.c warm_for). */
#define LIM_WARM_FIRST_MS 250
#define LIM_WARM_BATCH	  500
/* Largest report JSON built for one domain and day. */
#define LIM_RPT_REPORT (8 * 1024 * 1024)

/* TLS-RPT report store (tlsrpt/rpt_store.c): distinct policies and
 * distinct failure-detail tuples kept per report domain and UTC day, and
 * report domains per day; what does not fit is counted as dropped. */
#define LIM_RPT_DAY_POLICIES 64
#define LIM_RPT_DAY_DETAILS  1024
#define LIM_RPT_DAY_DOMAINS  1000000

/* SQLite stores (util/db.c): how long a statement waits for another
 * process's lock (the tool, a second daemon) before it fails. */
#define LIM_DB_BUSY_MS 5000
/* Policy store (cache/cache.c): changes kept in memory while the disk
 * refuses them (full, I/O errors), waiting to be written (DESIGN 6.10);
 * and how many of them one retry writes in its transaction. */
#define LIM_CACHE_PENDING     10000
#define LIM_CACHE_RETRY_BATCH 1000
/* A PostgreSQL policy store (cache/cache_pg.c): rows changed by other
 * hosts read by one step of the poll; a larger backlog is read in
 * several steps, each a short turn of the event loop. */
#define LIM_PG_POLL_BATCH 500
/* A lookup of a domain not in memory reads the shared store on the loop:
 * at most this many domains per query, this many waiting at once (more
 * read synchronously, bounded), and a client waits at most this long for
 * the read before the domain is resolved as if the store were down. */
#define LIM_PG_READ_BATCH 128
#define LIM_PG_READ_WAIT  1024
#define LIM_PG_READ_MS	  1000
/* Milliseconds the daemon waits for the shared store to accept a new
 * connection (at start-up: 5 s); a server that does not answer costs the
 * loop this long at each attempt to connect again. */
#define LIM_PG_CONNECT_MS 1000
/* Milliseconds a write batch or poll page may take on the loop before the
 * connection is given up. */
#define LIM_PG_IO_MS 5000
/* How long an unpin stays in the shared store as a tombstone row, so
 * the other hosts' polls see it (cache/cache_pg.c): in days. A host whose
 * poll falls further behind (its database link down for longer) misses
 * the unpin in memory until it evicts the domain or restarts. At most one
 * row per domain ever pinned, so the table stays bounded anyway. */
#define LIM_PG_PIN_TOMBSTONE_DAYS 7
/* The operator's commands on a shared store wait on the loop without
 * holding it (cache.h's jobs): at most this many at a time; more are
 * refused with a message. A flush marker (the `flushed` table) is kept as
 * long as a pin tombstone, for the same reason. */
#define LIM_PG_JOBS 64
/* A PostgreSQL TLS-RPT store (tlsrpt/rpt_store_pg.c, issue 13): seconds
 * between two connection attempts of one connection (calls fail at once
 * in between; the event loop's connection doubles the pause up to
 * LIM_RPT_PG_RETRY_MAX) and between two pushes of the spooled counts; how
 * long
 * shutdown waits for the last push. The spool holds what waits: at most
 * one batch is in flight, and the spool's own limits bound the next. */
#define LIM_RPT_PG_RETRY      2
#define LIM_RPT_PG_RETRY_MAX  60
#define LIM_RPT_PG_PUSH	      2
#define LIM_RPT_PG_CLOSE_WAIT 5000
/* How long one push statement may run (milliseconds). */
#define LIM_RPT_PG_PUSH_TIMEOUT_MS 120000
/* Days a PostgreSQL TLS-RPT store keeps a finished day (every report of
 * it sent, given up or without a record) after the day ended; the sender
 * then deletes it, at most LIM_RPT_PG_PRUNE_BATCH (day, domain) rows and
 * as many empty days per step of its periodic work. A day whose reports
 * still wait is kept until they are sent or given up (RPT_RETRY_WINDOW
 * after the first try); counts pushed for a day already that old are
 * deleted unsent. */
#define LIM_RPT_PG_KEEP_DAYS   30
#define LIM_RPT_PG_PRUNE_BATCH 200

#endif /* UTIL_LIMITS_H */
