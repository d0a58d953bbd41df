/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for resolver/cfg: defaults, every option type with good and
 * bad values (and the exact "FILE:LINE: [section] name: reason" text),
 * unknown and duplicate keys, [policy] normalisation, long lines, the
 * cfg_print round trip, cfg_static_find, and the documentation check of
 * STYLE rule 12: every option appears in contrib/tlspolicyd.conf (in its
 * section) and in doc/tlspolicyd.conf.5, and the example file loads.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cfg.h"
#include "tests/unit/tap.h"
#include "tlsrpt/rpt_store.h"
#include "util/limits.h"
#include "util/paths.h"

/* [tlsrpt] enabled = yes needs an identity of one's own (issue 10 #13). */
#define RPT_ID                                                                 \
	"\norganization = O\ncontact = mailto:p@o.test\nsubmitter = "          \
	"o.test\nfrom = r@o.test"

static char err[1024];

static struct cfg *
parse(const char *text)
{
	err[0] = '\0';
	return cfg_parse("t.conf", text, strlen(text), err, sizeof(err));
}

/* cfg_print into a malloc'd string. */
static char *
print(const struct cfg *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	if (fp == NULL)
		return NULL;
	cfg_print(cfg, fp);
	fclose(fp);
	return buf;
}

/*
 * The printed line for option NAME under [SECTION] in a cfg_print output,
 * copied into OUT (without the newline); "" when missing.
 */
static const char *
printed(const char *text, const char *section, const char *name, char *out,
	size_t outsz)
{
	char hdr[64], key[80];
	const char *p, *end, *nl;
	size_t klen;

	out[0] = '\0';
	snprintf(hdr, sizeof(hdr), "\n[%s]\n", section);
	if (text == NULL || (p = strstr(text, hdr)) == NULL)
		return out;
	p += strlen(hdr);
	if ((end = strstr(p, "\n[")) == NULL)
		end = p + strlen(p);
	snprintf(key, sizeof(key), "%s =", name);
	klen = strlen(key);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if ((size_t)(nl - p) >= klen && memcmp(p, key, klen) == 0 &&
		    (p[klen] == ' ' || p[klen] == '\n' || p + klen == nl)) {
			snprintf(out, outsz, "%.*s", (int)(nl - p), p);
			return out;
		}
		p = nl + 1;
	}
	return out;
}

static void
test_defaults(void)
{
	struct cfg *c = parse("");

	ok(c != NULL, "empty file parses: %s", err);
	if (c == NULL)
		return;
	is_str(c->socketmap,
	       "unix:" LOCALSTATEDIR "/spool/postfix/private/tlspolicy",
	       "default socketmap");
	is_int(c->socketmap_mode, 0660, "default socketmap_mode");
	is_str(c->socketmap_group, "postfix", "default socketmap_group");
	is_str(c->socketmap_names, "postfix", "default socketmap_names");
	is_str(c->tlsrpt_names, "", "default tlsrpt_names");
	is_str(c->query_socket, "unix:" RUNSTATEDIR "/tlspolicyd/query.sock",
	       "default query_socket");
	is_int(c->query_socket_mode, 0660, "default query_socket_mode");
	is_str(c->query_socket_group, "", "default query_socket_group");
	is_str(c->user, "tlspolicyd", "default user");
	is_int(c->verbose, 0, "default verbose");
	is_int(c->lookup_timeout, 10, "default lookup_timeout");
	is_int(c->max_connections, 4096, "default max_connections");
	is_int(c->idle_timeout, 60, "default idle_timeout");
	is_int(c->write_timeout, 30, "default write_timeout");
	is_int(c->request_timeout, 10, "default request_timeout");
	is_int(c->max_queued_output, 67108864, "default max_queued_output");
	is_int(c->query_max_connections, 1024, "default query_max_connections");
	is_int(c->query_max_per_peer, 256, "default query_max_per_peer");
	is_str(c->admin_socket, "unix:" RUNSTATEDIR "/tlspolicyd/admin.sock",
	       "default admin_socket");
	is_str(c->resolvers, "", "default resolvers");
	is_str(c->trust_anchor, "/usr/share/dns/root.key",
	       "default trust_anchor");
	is_int(c->dns_timeout, 5, "default dns timeout");
	/* Issue 10: empty = the trust anchor's own name. */
	is_str(c->selftest_name, "", "default selftest_name");
	is_str(c->root_hints, "", "default root_hints");
	is_str(c->ca_file, "", "default ca_file");
	is_int(c->fetch_timeout, 20, "default fetch_timeout");
	is_int(c->max_policy_size, 65536, "default max_policy_size");
	is_int(c->sts_testing, CFG_TESTING_REPORT, "default testing");
	is_int(c->smarthost_policy, 1, "default smarthost_policy");
	is_int(c->dane_mode, CFG_DANE_STRICT, "default dane mode");
	is_str(c->cache_path, LOCALSTATEDIR "/lib/tlspolicyd/cache.db",
	       "default cache path");
	is_int(c->memory_entries, 100000, "default memory_entries");
	is_int(c->refresh, 86400, "default refresh");
	is_int(c->tlsrpt_enabled, 0, "default tlsrpt enabled");
	is_str(c->tlsrpt_socket,
	       LOCALSTATEDIR "/spool/postfix/run/tlsrpt/tlsrpt.sock",
	       "default tlsrpt socket");
	is_str(c->postfix_log, "", "default postfix_log");
	is_str(c->organization, "Example Org", "default organization");
	is_str(c->contact, "mailto:postmaster@example.org", "default contact");
	is_str(c->submitter, "example.org", "default submitter");
	is_str(c->from, "tlsrpt-noreply@example.org", "default from");
	is_str(c->tlsrpt_smtp, "127.0.0.1:25", "default smtp");
	is_str(c->sendmail, "", "default sendmail (none: SMTP)");
	is_int(c->nstatics, 0, "no statics by default");
	is_str(c->source, "t.conf", "source is the name");
	cfg_free(c);

	c = cfg_load(NULL, err, sizeof(err));
	ok(c != NULL, "cfg_load(NULL) works");
	if (c != NULL)
		is_str(c->source, "(embedded defaults)", "embedded source");
	cfg_free(c);
	cfg_free(NULL);

	{
		const char *p = cfg_default_path();
		const char *want = SYSCONFDIR "/tlspolicyd/tlspolicyd.conf";

		is_str(p, want, "cfg_default_path");
	}
}

/* Good values: the config text and the line cfg_print then writes. */
static const struct {
	const char *text, *section, *name, *want;
} good[] = {
    /* words: normalised to single spaces */
    {"[server]\nsocketmap = unix:/run/a.sock\t inet:127.0.0.1:8461 "
     "inet:[::1]:1 inet:127.9.8.7:65535",
     "server", "socketmap",
     "socketmap = unix:/run/a.sock inet:127.0.0.1:8461 inet:[::1]:1 "
     "inet:127.9.8.7:65535"},
    {"[server]\nsocketmap_names = postfix pf310\ntlsrpt_names = pf310",
     "server", "tlsrpt_names", "tlsrpt_names = pf310"},
    {"[server]\nsocketmap_names = a!b~c", "server", "socketmap_names",
     "socketmap_names = a!b~c"},
    {"[dns]\nresolvers = 127.0.0.1 ::1 127.0.0.1@5353 ::1@53", "dns",
     "resolvers", "resolvers = 127.0.0.1 ::1 127.0.0.1@5353 ::1@53"},
    /* strings */
    {"[server]\nquery_socket =", "server", "query_socket", "query_socket ="},
    {"[server]\nuser =", "server", "user", "user ="},
    {"[server]\nsocketmap_group = 123", "server", "socketmap_group",
     "socketmap_group = 123"},
    {"[tlsrpt]\norganization = A;B ; inline comment", "tlsrpt", "organization",
     "organization = A;B"},
    {"[tlsrpt]\norganization = Ex\xc3\xa4mple  Org", "tlsrpt", "organization",
     "organization = Ex\xc3\xa4mple  Org"},
    {"[sts]\nca_file = /etc/ssl/ca.pem", "sts", "ca_file",
     "ca_file = /etc/ssl/ca.pem"},
    /* [server] protocols: Postfix's syntax, colon-separated */
    {"[server]\nprotocols = >=TLSv1.2", "server", "protocols",
     "protocols = >=TLSv1.2"},
    {"[server]\nprotocols = !SSLv2:!SSLv3:!TLSv1:!TLSv1.1", "server",
     "protocols", "protocols = !SSLv2:!SSLv3:!TLSv1:!TLSv1.1"},
    {"[server]\nprotocols = >=0x0303:<=TLSv1.3", "server", "protocols",
     "protocols = >=0x0303:<=TLSv1.3"},
    {"[server]\nprotocols =", "server", "protocols", "protocols ="},
    /* integers */
    {"[server]\nverbose = 2", "server", "verbose", "verbose = 2"},
    {"[server]\nlookup_timeout = 90", "server", "lookup_timeout",
     "lookup_timeout = 90"},
    {"[server]\nlookup_timeout = 1", "server", "lookup_timeout",
     "lookup_timeout = 1"},
    {"[server]\nmax_connections = 65536", "server", "max_connections",
     "max_connections = 65536"},
    {"[sts]\nmax_policy_size = 1024", "sts", "max_policy_size",
     "max_policy_size = 1024"},
    {"[cache]\nmemory_entries = 100000000", "cache", "memory_entries",
     "memory_entries = 100000000"},
    {"[cache]\nrefresh = 3600", "cache", "refresh", "refresh = 3600"},
    {"[dns]\ntimeout = 60", "dns", "timeout", "timeout = 60"},
    /* modes */
    {"[server]\nsocketmap_mode = 600", "server", "socketmap_mode",
     "socketmap_mode = 0600"},
    {"[server]\nquery_socket_mode = 0777", "server", "query_socket_mode",
     "query_socket_mode = 0777"},
    {"[server]\nquery_socket_mode = 0", "server", "query_socket_mode",
     "query_socket_mode = 0000"},
    /* booleans */
    {"[sts]\nsmarthost_policy = off", "sts", "smarthost_policy",
     "smarthost_policy = no"},
    {"[sts]\nsmarthost_policy = 0", "sts", "smarthost_policy",
     "smarthost_policy = no"},
    {"[tlsrpt]\nsmtp = [::1]:2525", "tlsrpt", "smtp", "smtp = [::1]:2525"},
    {"[tlsrpt]\nsmtp = 127.0.0.1:10025", "tlsrpt", "smtp",
     "smtp = 127.0.0.1:10025"},
    {"[tlsrpt]\nenabled = yes" RPT_ID "\nsmtp =\nsendmail = /usr/sbin/sendmail",
     "tlsrpt", "sendmail", "sendmail = /usr/sbin/sendmail"},
    {"[tlsrpt]\nenabled = TRUE" RPT_ID, "tlsrpt", "enabled", "enabled = yes"},
    {"[tlsrpt]\nenabled = on" RPT_ID, "tlsrpt", "enabled", "enabled = yes"},
    {"[tlsrpt]\nenabled = 1" RPT_ID, "tlsrpt", "enabled", "enabled = yes"},
    /* enums */
    {"[sts]\ntesting = enforce", "sts", "testing", "testing = enforce"},
    {"[dane]\nmode = opportunistic", "dane", "mode", "mode = opportunistic"},
    {"[dns]\nselftest_name = test.", "dns", "selftest_name",
     "selftest_name = test."},
    {"[dns]\nselftest_name = .", "dns", "selftest_name", "selftest_name = ."},
    {"[dns]\nroot_hints = /etc/tlspolicyd/root.hints", "dns", "root_hints",
     "root_hints = /etc/tlspolicyd/root.hints"},
    /* syntax details */
    {"  [server]\n\t  verbose = 1\n", "server", "verbose", "verbose = 1"},
    {"[server]\r\nverbose = 2\r\n", "server", "verbose", "verbose = 2"},
    {"\xef\xbb\xbf[server]\nverbose = 1", "server", "verbose", "verbose = 1"},
    {"; comment\n# comment\n[server]\nverbose : 1 ; why", "server", "verbose",
     "verbose = 1"},
    {"[server]\n[dns]\n[server]\nverbose = 1", "server", "verbose",
     "verbose = 1"},
};

static void
test_good(void)
{
	char line[512];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cfg *c = parse(good[i].text);
		char *out = c ? print(c) : NULL;

		if (!ok(c != NULL, "good %zu parses", i))
			printf("#   error: %s\n", err);
		is_str(printed(out, good[i].section, good[i].name, line,
			       sizeof(line)),
		       good[i].want, "good %zu: [%s] %s", i, good[i].section,
		       good[i].name);
		free(out);
		cfg_free(c);
	}
}

/* Issue 13: [cache] path names SQLite or PostgreSQL; the state directory
 * follows a file path and is the default one for a URI. */
static void
test_store_uri(void)
{
	struct cfg *c = parse("[cache]\npath = postgresql:///tlspolicyd?"
			      "host=/run/postgresql");
	char buf[256];

	if (!ok(c != NULL, "a postgresql:// URI parses"))
		printf("#   error: %s\n", err);
	if (c != NULL) {
		is_str(c->cache_path,
		       "postgresql:///tlspolicyd?host=/run/"
		       "postgresql",
		       "the URI is kept as given");
		is_str(cfg_state_dir(c->cache_path, buf, sizeof(buf)),
		       LOCALSTATEDIR "/lib/tlspolicyd",
		       "a URI: the default state directory");
	}
	cfg_free(c);
	ok(cfg_is_pg_uri("postgres://db/x"), "postgres:// is PostgreSQL");
	ok(!cfg_is_pg_uri("/var/lib/postgresql://x"), "a file path is not");
	ok(!cfg_is_pg_uri("postgresql:"), "a bare scheme is not a URI");
	is_str(cfg_uri_redacted("postgresql://tp:s3cret@db.example/tp?"
				"sslmode=require",
				buf, sizeof(buf)),
	       "postgresql://tp:***@db.example/tp?sslmode=require",
	       "a URI's password is not logged");
	is_str(cfg_uri_redacted("postgresql:///tp?host=/run/postgresql&"
				"password=s3cret&user=tp",
				buf, sizeof(buf)),
	       "postgresql:///tp?host=/run/postgresql&password=***&user=tp",
	       "nor a password parameter");
	is_str(cfg_uri_redacted("postgres://tp@db/x?passfile=/etc/pgpass", buf,
				sizeof(buf)),
	       "postgres://tp@db/x?passfile=/etc/pgpass",
	       "a URI without a password is as it is");
	is_str(
	    cfg_uri_redacted("/var/lib/tlspolicyd/cache.db", buf, sizeof(buf)),
	    "/var/lib/tlspolicyd/cache.db", "a file path is as it is");
	is_str(cfg_state_dir("/srv/tp/cache.db", buf, sizeof(buf)), "/srv/tp",
	       "a file: its directory");
	c = parse("[cache]\npath = postgresql://");
	ok(c == NULL, "postgresql:// alone is refused");
	cfg_free(c);
	/* The TLS-RPT store too, with its spool beside [cache] path. */
	c = parse("[cache]\npath = /srv/tp/cache.db\n[tlsrpt]\nstore = "
		  "postgresql:///tlspolicyd?host=/run/postgresql");
	if (!ok(c != NULL, "[tlsrpt] store: a URI parses"))
		printf("#   error: %s\n", err);
	if (c != NULL) {
		rpt_store_path(c->tlsrpt_store, c->cache_path, buf,
			       sizeof(buf));
		is_str(buf, "postgresql:///tlspolicyd?host=/run/postgresql",
		       "[tlsrpt] store: the URI is the store");
		rpt_store_path(NULL, c->cache_path, buf, sizeof(buf));
		is_str(buf, "/srv/tp/tlsrpt.db",
		       "its spool: tlsrpt.db beside "
		       "[cache] path");
	}
	cfg_free(c);
	c = parse("[tlsrpt]\nstore = tlsrpt.db");
	ok(c == NULL && strstr(err, "want an absolute path or a postgresql:// "
				    "URI") != NULL,
	   "[tlsrpt] store: a relative path is refused: %s", err);
	cfg_free(c);
}

/* Bad input and the exact error. */
static const struct {
	const char *text, *want;
} bad[] = {
    /* integers */
    {"[server]\nverbose = 3",
     "t.conf:2: [server] verbose: \"3\": want an integer from 0 to 2"},
    {"[server]\n\nlookup_timeout = 0",
     "t.conf:3: [server] lookup_timeout: \"0\": want an integer from 1 "
     "to 90"},
    {"[server]\nlookup_timeout = 91",
     "t.conf:2: [server] lookup_timeout: \"91\": want an integer from 1 "
     "to 90"},
    {"[server]\nidle_timeout = 1e3",
     "t.conf:2: [server] idle_timeout: \"1e3\": want an integer from 1 "
     "to 86400"},
    {"[server]\nidle_timeout =",
     "t.conf:2: [server] idle_timeout: \"\": want an integer from 1 to "
     "86400"},
    {"[server]\nmax_connections = 99999999999999999999999",
     "t.conf:2: [server] max_connections: \"99999999999999999999999\": "
     "want an integer from 1 to 65536"},
    {"[sts]\nmax_policy_size = 65537",
     "t.conf:2: [sts] max_policy_size: \"65537\": want an integer from "
     "1024 to 65536"},
    {"[cache]\nrefresh = 3599",
     "t.conf:2: [cache] refresh: \"3599\": want an integer from 3600 to "
     "604800"},
    {"[dns]\ntimeout = -1",
     "t.conf:2: [dns] timeout: \"-1\": want an integer from 1 to 60"},
    /* modes */
    {"[server]\nsocketmap_mode = 0800",
     "t.conf:2: [server] socketmap_mode: \"0800\": want an octal mode "
     "from 0 to 0777 (like 0660)"},
    {"[server]\nsocketmap_mode = 01000",
     "t.conf:2: [server] socketmap_mode: \"01000\": want an octal mode "
     "from 0 to 0777 (like 0660)"},
    {"[server]\nquery_socket_mode = rw",
     "t.conf:2: [server] query_socket_mode: \"rw\": want an octal mode "
     "from 0 to 0777 (like 0660)"},
    {"[server]\nquery_socket_mode =",
     "t.conf:2: [server] query_socket_mode: \"\": want an octal mode "
     "from 0 to 0777 (like 0660)"},
    /* booleans and enums */
    {"[sts]\nsmarthost_policy = maybe",
     "t.conf:2: [sts] smarthost_policy: \"maybe\": want yes or no"},
    {"[sts]\ntesting = strict",
     "t.conf:2: [sts] testing: \"strict\": want report or enforce"},
    {"[dane]\nmode = enforce",
     "t.conf:2: [dane] mode: \"enforce\": want strict or opportunistic"},
    {"[dns]\nselftest_name = a..b",
     "t.conf:2: [dns] selftest_name: \"a..b\": want \".\" or a domain "
     "name"},
    /* socketmap endpoints */
    {"[server]\nsocketmap = inet:192.0.2.1:8461",
     "t.conf:2: [server] socketmap: \"inet:192.0.2.1:8461\": only "
     "loopback (127.0.0.0/8, ::1) is allowed"},
    {"[server]\nsocketmap = inet:[2001:db8::1]:8461",
     "t.conf:2: [server] socketmap: \"inet:[2001:db8::1]:8461\": only "
     "loopback (127.0.0.0/8, ::1) is allowed"},
    {"[server]\nsocketmap = unix:/ok inet:127.0.0.1:0",
     "t.conf:2: [server] socketmap: \"inet:127.0.0.1:0\": port must be 1 "
     "to 65535"},
    {"[server]\nsocketmap = inet:127.0.0.1:65536",
     "t.conf:2: [server] socketmap: \"inet:127.0.0.1:65536\": port must "
     "be 1 to 65535"},
    {"[server]\nsocketmap = inet:::1:25",
     "t.conf:2: [server] socketmap: \"inet:::1:25\": not an IPv4 address "
     "(write IPv6 as [::1])"},
    {"[server]\nsocketmap = inet:localhost:25",
     "t.conf:2: [server] socketmap: \"inet:localhost:25\": not an IPv4 "
     "address (write IPv6 as [::1])"},
    {"[server]\nsocketmap = unix:relative",
     "t.conf:2: [server] socketmap: \"unix:relative\": want "
     "unix:/ABSOLUTE-PATH"},
    {"[server]\nsocketmap = tcp:127.0.0.1:25",
     "t.conf:2: [server] socketmap: \"tcp:127.0.0.1:25\": want "
     "unix:/PATH or inet:IP:PORT"},
    {"[server]\nsocketmap =",
     "t.conf:2: [server] socketmap: want at least 1 entry"},
    {"[server]\nsocketmap = unix:/1 unix:/2 unix:/3 unix:/4 unix:/5 "
     "unix:/6 unix:/7 unix:/8 unix:/9 unix:/10 unix:/11 unix:/12 "
     "unix:/13 unix:/14 unix:/15 unix:/16 unix:/17",
     "t.conf:2: [server] socketmap: more than 16 entries"},
    {"[server]\nquery_socket = inet:127.0.0.1:1",
     "t.conf:2: [server] query_socket: \"inet:127.0.0.1:1\": want "
     "unix:/ABSOLUTE-PATH"},
    /* map names */
    {"[server]\nsocketmap_names = "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "t.conf:2: [server] socketmap_names: "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
     "a map name has 1 to 64 bytes"},
    {"[server]\nsocketmap_names = p\xc3\xa4",
     "t.conf:2: [server] socketmap_names: \"p\\xc3\\xa4\": a map name is "
     "printable ASCII"},
    {"[server]\nsocketmap_names =",
     "t.conf:2: [server] socketmap_names: want at least 1 entry"},
    {"[server]\ntlsrpt_names = other",
     "t.conf:2: [server] tlsrpt_names: \"other\" is not in "
     "socketmap_names"},
    {"[dns]\nroot_hints = /x/root.hints\nresolvers = 127.0.0.1",
     "t.conf:2: [dns] root_hints: only for full recursion; [dns] "
     "resolvers is set (empty it, or remove root_hints)"},
    {"[dns]\nroot_hints = x/root.hints",
     "t.conf:2: [dns] root_hints: \"x/root.hints\": want an absolute "
     "path"},
    /* [server] protocols: what Postfix would not accept in a policy */
    {"[server]\nprotocols = >=TLSv1.2 <=TLSv1.3",
     "t.conf:2: [server] protocols: \">=TLSv1.2 <=TLSv1.3\": want one "
     "\">=VERSION\" with a TLS "
     "protocol name or number"},
    {"[server]\nprotocols = !SSLv2,!SSLv3",
     "t.conf:2: [server] protocols: \"!SSLv2,!SSLv3\": want colon-separated "
     "items like "
     "\">=TLSv1.2\" or \"!SSLv3\" (names: SSLv2, SSLv3, TLSv1, TLSv1.1, "
     "TLSv1.2, TLSv1.3)"},
    {"[server]\nprotocols = !SSLv2::!SSLv3",
     "t.conf:2: [server] protocols: \"!SSLv2::!SSLv3\": an empty item "
     "(separate items with one "
     "colon; no spaces or commas)"},
    {"[server]\nprotocols = >=TLSv1.4",
     "t.conf:2: [server] protocols: \">=TLSv1.4\": want one \">=VERSION\" with "
     "a TLS "
     "protocol name or number"},
    {"[server]\nprotocols = >=TLSv1.2:>=TLSv1.3",
     "t.conf:2: [server] protocols: \">=TLSv1.2:>=TLSv1.3\": want one "
     "\">=VERSION\" with a TLS "
     "protocol name or number"},
    {"[server]\nprotocols = !0x0301",
     "t.conf:2: [server] protocols: \"!0x0301\": want colon-separated items "
     "like "
     "\">=TLSv1.2\" or \"!SSLv3\" (names: SSLv2, SSLv3, TLSv1, TLSv1.1, "
     "TLSv1.2, TLSv1.3)"},
    /* resolvers, paths, accounts, strings */
    {"[dns]\nresolvers = 127.0.0.1 localhost",
     "t.conf:2: [dns] resolvers: \"localhost\": want IP or IP@PORT"},
    {"[dns]\nresolvers = 127.0.0.1@",
     "t.conf:2: [dns] resolvers: \"127.0.0.1@\": port must be 1 to 65535"},
    {"[dns]\ntrust_anchor =",
     "t.conf:2: [dns] trust_anchor: \"\": want an absolute path"},
    {"[cache]\npath = cache.db",
     "t.conf:2: [cache] path: \"cache.db\": want an absolute path or a "
     "postgresql:// URI"},
    {"[server]\nuser = tls policyd",
     "t.conf:2: [server] user: \"tls policyd\": not a user or group name"},
    /* Issue 10 item 13: no reports in the example's name. */
    {"[tlsrpt]\nenabled = yes",
     "t.conf:2: [tlsrpt] enabled = yes, but organization, contact, "
     "submitter, from are empty or still the example value: set [tlsrpt] "
     "organization, contact, submitter and from to your own before "
     "reports are sent in your name"},
    {"[tlsrpt]\norganization = Real Org\ncontact = mailto:tls@real.test\n"
     "from = r@real.test\nenabled = yes",
     "t.conf:5: [tlsrpt] enabled = yes, but submitter is empty or still "
     "the example value: set [tlsrpt] organization, contact, submitter and "
     "from to your own before reports are sent in your name"},
    {"[tlsrpt]\nenabled = yes" RPT_ID "\norganization2 = x",
     "t.conf:7: [tlsrpt] organization2: unknown option"},
    {"[tlsrpt]\nenabled = yes\norganization =\ncontact = mailto:p@o.test\n"
     "submitter = o.test\nfrom = r@o.test",
     "t.conf:2: [tlsrpt] enabled = yes, but organization is empty or still "
     "the example value: set [tlsrpt] organization, contact, submitter and "
     "from to your own before reports are sent in your name"},
    {"[tlsrpt]\nenabled = yes" RPT_ID
     "\ncontact = mailto:postmaster@example.org",
     "t.conf:7: [tlsrpt] contact: set twice (first at line 4)"},
    {"[tlsrpt]\nenabled = yes\norganization = O\n"
     "contact = mailto:postmaster@example.org\nsubmitter = o.test\n"
     "from = r@o.test",
     "t.conf:2: [tlsrpt] enabled = yes, but contact is empty or still the "
     "example value: set [tlsrpt] organization, contact, submitter and "
     "from to your own before reports are sent in your name"},
    {"[tlsrpt]\nenabled = yes" RPT_ID "\nsmtp =\nsendmail =",
     "t.conf:2: [tlsrpt] enabled = yes, but smtp and sendmail are both "
     "empty: reports could not be mailed"},
    {"[tlsrpt]\nsmtp = localhost:25",
     "t.conf:2: [tlsrpt] smtp: \"localhost:25\": want IP:PORT, e.g. "
     "127.0.0.1:25 (write IPv6 as [::1]:25)"},
    {"[tlsrpt]\nsmtp = 127.0.0.1",
     "t.conf:2: [tlsrpt] smtp: \"127.0.0.1\": want IP:PORT, e.g. "
     "127.0.0.1:25 (write IPv6 as [::1]:25)"},
    {"[tlsrpt]\nsmtp = [::1]:0",
     "t.conf:2: [tlsrpt] smtp: \"[::1]:0\": port must be 1 to 65535"},
    {"[tlsrpt]\nsmtp = ::1:25",
     "t.conf:2: [tlsrpt] smtp: \"::1:25\": want IP:PORT, e.g. "
     "127.0.0.1:25 (write IPv6 as [::1]:25)"},
    {"[tlsrpt]\nsendmail = sendmail",
     "t.conf:2: [tlsrpt] sendmail: \"sendmail\": want an absolute path"},
    {"[tlsrpt]\norganization =;x",
     "t.conf:2: [tlsrpt] organization: a value cannot start with ';'"},
    /* found by fuzz_cfg: the printed "name = ;s" read back as empty */
    {"[server]\nsocketmap_names =;s",
     "t.conf:2: [server] socketmap_names: a value cannot start with ';'"},
    /* structure */
    {"[server]\nfoo = 1", "t.conf:2: [server] foo: unknown option"},
    {"[dns]\nverbose = 1", "t.conf:2: [dns] verbose: unknown option"},
    {"[server]\nVerbose = 1", "t.conf:2: [server] Verbose: unknown option"},
    {"[foo]\n", "t.conf:1: [foo]: unknown section"},
    {"[server]\n[Server]\n", "t.conf:2: [Server]: unknown section"},
    {"verbose = 1", "t.conf:1: verbose: option before any [section]"},
    {"[server]\nverbose = 1\n\nverbose = 1",
     "t.conf:4: [server] verbose: set twice (first at line 2)"},
    {"[server]\nverbose = 1\n[dns]\n[server]\nverbose = 2",
     "t.conf:5: [server] verbose: set twice (first at line 2)"},
    {"[server]\nverbose\n",
     "t.conf:2: syntax error: want [section], name = value or a ; "
     "comment"},
    {"[server\nverbose = 1\n",
     "t.conf:1: syntax error: want [section], name = value or a ; "
     "comment"},
    {"[server]\nverbose = 1 \x01\n",
     "t.conf:2: control character 0x01 in line"},
    {"[server]\nverbose = 1\x7f\n", "t.conf:2: control character 0x7f in line"},
    {"[server]\nverbose = 1\rx\n", "t.conf:2: control character 0x0d in line"},
    /* the first error wins */
    {"[server]\nfoo = 1\nbar = 2", "t.conf:2: [server] foo: unknown option"},
    /* [policy] */
    {"[policy]\n192.0.2.1 = none",
     "t.conf:2: [policy] 192.0.2.1: not a domain name: IP literal"},
    {"[policy]\n.example.com = none",
     "t.conf:2: [policy] .example.com: not a domain name: parent domain "
     "probe"},
    {"[policy]\nexa_mple.com = none",
     "t.conf:2: [policy] exa_mple.com: not a domain name: invalid domain "
     "name"},
    {"[policy]\nexample.com = dane-only\nexample.net = bogus",
     "t.conf:3: [policy] example.net: answer must start with none, may, "
     "encrypt, dane, dane-only, fingerprint, verify or secure"},
    {"[policy]\nexample.com = secure match",
     "t.conf:2: [policy] example.com: \"match\": want attribute=value"},
    {"[policy]\nexample.com =", "t.conf:2: [policy] example.com: empty answer"},
    {"[policy]\nexample.com = none\nexample.net = may\nEXAMPLE.com. = may",
     "t.conf:4: [policy] example.com: given twice (first at line 2)"},
};

static void
test_bad(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *c = parse(bad[i].text);

		ok(c == NULL, "bad %zu is refused", i);
		is_str(err, bad[i].want, "bad %zu: error text", i);
		cfg_free(c);
	}
	/* A NUL byte would end inih's line early: it must be refused. */
	{
		static const char nul[] = "[server]\nverbose = 1\0 2\n";
		struct cfg *c =
		    cfg_parse("t.conf", nul, sizeof(nul) - 1, err, sizeof(err));

		ok(c == NULL, "NUL byte refused");
		is_str(err, "t.conf:2: control character 0x00 in line",
		       "NUL byte error");
		cfg_free(c);
	}
	/* A tiny error buffer still gets a terminated prefix. */
	{
		char small[8];
		struct cfg *c =
		    cfg_parse("t.conf", "[x]", 3, small, sizeof(small));

		ok(c == NULL, "refused with small error buffer");
		is_str(small, "t.conf:", "small error buffer truncates");
		cfg_free(c);
	}
}

static void
test_policy(void)
{
	const char *text = "[policy]\n"
			   "Example.COM. = dane-only\n"
			   "b.example = secure match=mx.b.example "
			   "servername=hostname\n"
			   "a.example = none ; never a policy\n"
			   "xn--bcher-kva.example = may\n"
			   "c.example: encrypt protocols=>=TLSv1.2\n";
	const struct cfg_static *s;
	struct cfg *c = parse(text);
	size_t i;

	if (!ok(c != NULL, "[policy] parses")) {
		printf("#   error: %s\n", err);
		return;
	}
	is_int(c->nstatics, 5, "five statics");
	for (i = 1; i < c->nstatics; i++)
		ok(strcmp(c->statics[i - 1].domain, c->statics[i].domain) < 0,
		   "statics sorted at %zu", i);
	s = cfg_static_find(c, "example.com");
	ok(s != NULL, "Example.COM. normalised to example.com");
	if (s != NULL)
		is_str(s->answer, "dane-only", "example.com answer");
	s = cfg_static_find(c, "b.example");
	is_str(s ? s->answer : NULL,
	       "secure match=mx.b.example servername=hostname",
	       "b.example answer kept whole");
	s = cfg_static_find(c, "a.example");
	is_str(s ? s->answer : NULL, "none", "inline comment stripped");
	s = cfg_static_find(c, "c.example");
	is_str(s ? s->answer : NULL, "encrypt protocols=>=TLSv1.2",
	       "name: value form");
	ok(cfg_static_find(c, "xn--bcher-kva.example") != NULL,
	   "A-label domain");
	ok(cfg_static_find(c, "d.example") == NULL, "missing domain");
	ok(cfg_static_find(c, "Example.COM") == NULL,
	   "find takes a normalised domain");
	ok(cfg_static_find(c, "") == NULL, "empty domain");
	cfg_free(c);

	c = parse("");
	ok(c != NULL && cfg_static_find(c, "example.com") == NULL,
	   "find in empty cfg");
	cfg_free(c);
	ok(cfg_static_find(NULL, "example.com") == NULL, "find in NULL cfg");
}

static const struct {
	const char *answer;
	int want;
} answers[] = {
    {"none", 1},
    {"may", 1},
    {"encrypt", 1},
    {"dane", 1},
    {"dane-only", 1},
    {"fingerprint match=AA:BB", 1},
    {"verify", 1},
    {"secure match=nexthop:dot-nexthop ciphers=high", 1},
    {"secure  match=a", 1},
    {"", 0},
    {"dane-onl", 0},
    {"DANE", 0},
    {"secure\tmatch=a", 0},
    {"secure match=a\n", 0},
    {"secure =a", 0},
    {"secure # comment", 0},
    {"may \xc3\xa4=1", 0},
    {" may", 0},
};

static void
test_answers(void)
{
	char why[128], big[LIM_ANSWER_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		why[0] = '\0';
		is_int(cfg_static_answer_valid(answers[i].answer, why,
					       sizeof(why)),
		       answers[i].want, "answer %zu", i);
		if (!answers[i].want)
			ok(why[0] != '\0', "answer %zu has a reason", i);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "may x=", 6);
	big[LIM_ANSWER_MAX] = '\0';
	is_int(cfg_static_answer_valid(big, why, sizeof(why)), 1,
	       "answer of LIM_ANSWER_MAX bytes");
	big[LIM_ANSWER_MAX] = 'a';
	big[LIM_ANSWER_MAX + 1] = '\0';
	is_int(cfg_static_answer_valid(big, why, sizeof(why)), 0,
	       "answer over LIM_ANSWER_MAX");
	is_int(cfg_static_answer_valid(NULL, NULL, 0), 0, "NULL answer");
}

/* A [policy] line of LINELEN bytes: "example.com = secure match=aaa...". */
static char *
long_policy(size_t answerlen, size_t *answer_off)
{
	static const char head[] = "[policy]\nexample.com = ";
	char *buf = malloc(sizeof(head) + answerlen + 2);

	if (buf == NULL)
		abort();
	memcpy(buf, head, sizeof(head) - 1);
	memset(buf + sizeof(head) - 1, 'm', answerlen);
	memcpy(buf + sizeof(head) - 1, "secure match=", 13);
	strcpy(buf + sizeof(head) - 1 + answerlen, "\n");
	*answer_off = sizeof(head) - 1;
	return buf;
}

static void
test_long(void)
{
	const struct cfg_static *s;
	struct cfg *c;
	size_t off, linelen;
	char *buf, path[] = "/tmp/test_cfg.XXXXXX";
	int fd;

	/* A 1000-byte answer: far over inih's default 200-byte lines. */
	buf = long_policy(1000, &off);
	c = parse(buf);
	ok(c != NULL, "1000-byte [policy] answer parses: %s", err);
	s = c ? cfg_static_find(c, "example.com") : NULL;
	ok(s != NULL && strlen(s->answer) == 1000 &&
	       memcmp(s->answer, buf + off, 1000) == 0,
	   "1000-byte answer kept whole");
	cfg_free(c);
	free(buf);

	/* The longest line: LIM_CONFIG_VALUE bytes ("example.com = " is 14). */
	linelen = LIM_CONFIG_VALUE;
	buf = long_policy(linelen - 14, &off);
	c = parse(buf);
	ok(c != NULL, "line of %zu bytes parses: %s", linelen, err);
	s = c ? cfg_static_find(c, "example.com") : NULL;
	ok(s != NULL && strlen(s->answer) == linelen - 14,
	   "longest answer kept whole");
	cfg_free(c);
	free(buf);

	/* One byte more is an error, never a truncation. */
	buf = long_policy(linelen - 13, &off);
	c = parse(buf);
	ok(c == NULL, "line of %zu bytes refused", linelen + 1);
	is_str(err, "t.conf:2: line longer than 4096 bytes", "long line error");
	cfg_free(c);

	/* The same through the file reader of cfg_load(). */
	if ((fd = mkstemp(path)) < 0 ||
	    write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf)) {
		ok(0, "temp file");
	} else {
		char want[256];

		c = cfg_load(path, err, sizeof(err));
		ok(c == NULL, "long line refused by cfg_load");
		snprintf(want, sizeof(want),
			 "%s:2: line longer than 4096 bytes", path);
		is_str(err, want, "cfg_load long line error");
		cfg_free(c);
		free(buf);
		buf = long_policy(1000, &off);
		if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
		    write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf))
			ok(0, "rewrite temp file");
		c = cfg_load(path, err, sizeof(err));
		ok(c != NULL, "cfg_load reads a 1000-byte answer: %s", err);
		s = c ? cfg_static_find(c, "example.com") : NULL;
		ok(s != NULL && strlen(s->answer) == 1000,
		   "cfg_load keeps the answer whole");
		is_str(c ? c->source : NULL, path, "source is the path");
		cfg_free(c);
	}
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(buf);

	c = cfg_load("/nonexistent/tlspolicyd.conf", err, sizeof(err));
	ok(c == NULL, "missing file is an error");
	is_str(err, "/nonexistent/tlspolicyd.conf: No such file or directory",
	       "missing file error");
	cfg_free(c);
}

/* Write TEXT to a new temp file named into PATH (a mkstemp template). */
static int
temp_file(char *path, const char *text)
{
	int fd = mkstemp(path);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Issue 10 item 16: [sts] ca_file must exist and hold a PEM certificate. */
static void
test_ca_file(void)
{
	char conf[] = "/tmp/test_cfg_caXXXXXX",
	     ca[] = "/tmp/test_cfg_pemXXXXXX";
	char text[256], want[512];
	struct cfg *c;
	FILE *fp;

	if (!ok(temp_file(ca, "not a certificate\n") == 0, "temp CA file"))
		return;
	snprintf(text, sizeof(text), "[sts]\n\nca_file = %s\n", ca);
	if (!ok(temp_file(conf, text) == 0, "temp config")) {
		unlink(ca);
		return;
	}
	c = cfg_load(conf, err, sizeof(err));
	ok(c == NULL, "non-PEM ca_file refused");
	snprintf(want, sizeof(want),
		 "%s:3: [sts] ca_file: %s holds no PEM certificate (no "
		 "\"-----BEGIN CERTIFICATE-----\" line)",
		 conf, ca);
	is_str(err, want, "non-PEM ca_file: FILE:LINE and plain words");
	cfg_free(c);

	unlink(ca);
	c = cfg_load(conf, err, sizeof(err));
	ok(c == NULL, "missing ca_file refused");
	snprintf(want, sizeof(want),
		 "%s:3: [sts] ca_file: %s: No such file or directory", conf,
		 ca);
	is_str(err, want, "missing ca_file: FILE:LINE and the reason");
	cfg_free(c);

	if (temp_file(ca, "# bundle\n-----BEGIN CERTIFICATE-----\nMIIB\n"
			  "-----END CERTIFICATE-----\n") == 0) {
		snprintf(text, sizeof(text), "[sts]\nca_file = %s\n", ca);
		if ((fp = fopen(conf, "w")) != NULL) {
			fputs(text, fp);
			fclose(fp);
		}
		c = cfg_load(conf, err, sizeof(err));
		ok(c != NULL, "PEM ca_file accepted: %s", err);
		cfg_free(c);
		unlink(ca);
	}
	/* The pure parser does no I/O: the path is only checked for form. */
	c = parse("[sts]\nca_file = /nonexistent/ca.pem\n");
	ok(c != NULL, "cfg_parse does not open ca_file");
	cfg_free(c);
	unlink(conf);
}

static void
test_round_trip(void)
{
	static const char *const texts[] = {
	    "",
	    "[server]\n"
	    "socketmap = unix:/run/x.sock  inet:127.0.0.1:8461 "
	    "inet:[::1]:8462\n"
	    "socketmap_mode = 600\n"
	    "socketmap_group =\n"
	    "socketmap_names = postfix pf310\n"
	    "tlsrpt_names = pf310\n"
	    "query_socket =\n"
	    "query_socket_mode = 0\n"
	    "query_socket_group = mail\n"
	    "user =\n"
	    "verbose = 2\n"
	    "lookup_timeout = 1\n"
	    "max_connections = 65536\n"
	    "idle_timeout = 86400\n"
	    "write_timeout = 1\n"
	    "[dns]\nresolvers = 127.0.0.1@5353 ::1\n"
	    "trust_anchor = /x/root.key\ntimeout = 1\n"
	    "[sts]\nca_file = /ca.pem\nfetch_timeout = 120\n"
	    "max_policy_size = 1024\ntesting = ENFORCE\n"
	    "smarthost_policy = off\n"
	    "[dane]\nmode = opportunistic\n"
	    "[cache]\npath = /c.db\nmemory_entries = 1\nrefresh = 604800\n"
	    "[tlsrpt]\nenabled = yes\nsocket =\npostfix_log = /var/log/mail\n"
	    "organization = A;B=C  [x] #y\ncontact = https://x/\n"
	    "submitter = s\nfrom = f@s\nsendmail = /bin/true -t\n"
	    "[policy]\nZ.example = none\nA.example. = secure match=a:b\n",
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct cfg *a = parse(texts[i]), *b = NULL;
		char *pa = NULL, *pb = NULL;

		if (!ok(a != NULL, "round trip %zu: parses", i)) {
			printf("#   error: %s\n", err);
			continue;
		}
		pa = print(a);
		b = pa ? parse(pa) : NULL;
		if (!ok(b != NULL, "round trip %zu: printed config parses", i))
			printf("#   error: %s\n", err);
		pb = b ? print(b) : NULL;
		is_str(pb, pa, "round trip %zu: same settings", i);
		if (i == 1 && b != NULL) {
			is_str(b->socketmap,
			       "unix:/run/x.sock inet:127.0.0.1:8461 "
			       "inet:[::1]:8462",
			       "round trip socketmap");
			is_int(b->socketmap_mode, 0600, "round trip mode");
			is_int(b->sts_testing, CFG_TESTING_ENFORCE,
			       "round trip enum");
			is_int(b->smarthost_policy, 0, "round trip bool");
			is_str(b->organization, "A;B=C  [x] #y",
			       "round trip string");
			is_int(b->nstatics, 2, "round trip statics");
			is_str(b->statics[0].domain, "a.example",
			       "round trip policy domain");
			is_str(b->statics[0].answer, "secure match=a:b",
			       "round trip policy answer");
		}
		free(pa);
		free(pb);
		cfg_free(a);
		cfg_free(b);
	}
}

static void
test_word_in(void)
{
	is_int(cfg_word_in("a bb c", "bb", 2), 1, "word in middle");
	is_int(cfg_word_in("a bb c", "a", 1), 1, "first word");
	is_int(cfg_word_in("a bb c", "c", 1), 1, "last word");
	is_int(cfg_word_in("a bb c", "b", 1), 0, "prefix of a word");
	is_int(cfg_word_in("a bb c", "bb c", 4), 0, "two words");
	is_int(cfg_word_in("a\tbb", "bb", 2), 1, "tab separated");
	is_int(cfg_word_in("bbx", "bbxyz", 3), 1, "NAME needs no NUL");
	is_int(cfg_word_in("", "a", 1), 0, "empty list");
	is_int(cfg_word_in(NULL, "a", 1), 0, "NULL list");
	is_int(cfg_word_in("a", "", 0), 0, "empty name");
}

/* STYLE rule 12: the example config and the man page list every option. */
struct doc_check {
	char *conf, *man;
	int n;
};

/* Does TEXT, between "HDR" and the next line starting with HDRSTART, have
 * a line that (after STRIP leading characters) begins with KEY? */
static int
doc_has(const char *text, const char *hdr, const char *hdrstart,
	const char *strip, const char *key)
{
	const char *p, *nl, *q;
	size_t klen = strlen(key), hlen = strlen(hdrstart);

	if (text == NULL || (p = strstr(text, hdr)) == NULL)
		return 0;
	p = strchr(p + strlen(hdr), '\n');
	while (p != NULL && *++p != '\0') {
		if (strncmp(p, hdrstart, hlen) == 0)
			return 0;
		nl = strchr(p, '\n');
		for (q = p; *q != '\0' && *q != '\n' && strchr(strip, *q); q++)
			;
		if (strncmp(q, key, klen) == 0)
			return 1;
		p = nl;
	}
	return 0;
}

static void
doc_option(const char *section, const char *name, const char *defval,
	   const char *help, void *arg)
{
	struct doc_check *d = arg;
	char hdr[64], key[96];

	d->n++;
	ok(help != NULL && *help != '\0', "[%s] %s has help", section, name);
	ok(defval != NULL, "[%s] %s has a default", section, name);
	/* contrib: "[section]" header, then "# name =" or "name =". */
	snprintf(hdr, sizeof(hdr), "\n[%s]", section);
	snprintf(key, sizeof(key), "%s =", name);
	ok(doc_has(d->conf, hdr, "[", "#; ", key),
	   "contrib/tlspolicyd.conf has [%s] %s", section, name);
	/* man page: ".SS [section]", then ".B name" under it. */
	snprintf(hdr, sizeof(hdr), "\n.SS [%s]", section);
	snprintf(key, sizeof(key), ".B %s\n", name);
	ok(doc_has(d->man, hdr, ".SS", "", key),
	   "doc/tlspolicyd.conf.5 has [%s] %s", section, name);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n + 1)) == NULL) {
		fclose(fp);
		return NULL;
	}
	buf[fread(buf, 1, (size_t)n, fp)] = '\0';
	fclose(fp);
	return buf;
}

static void
test_docs(void)
{
	const char *top = getenv("top_srcdir");
	char conf[4096], man[4096];
	struct doc_check d = {NULL, NULL, 0};
	struct cfg *c;

	if (top == NULL)
		top = ".";
	snprintf(conf, sizeof(conf), "%s/contrib/tlspolicyd.conf", top);
	snprintf(man, sizeof(man), "%s/doc/tlspolicyd.conf.5", top);
	d.conf = slurp(conf);
	d.man = slurp(man);
	ok(d.conf != NULL, "read %s", conf);
	ok(d.man != NULL, "read %s", man);
	cfg_foreach_option(doc_option, &d);
	ok(d.n == 52, "cfg_foreach_option walked %d options", d.n);
	c = cfg_load(conf, err, sizeof(err));
	if (!ok(c != NULL, "contrib/tlspolicyd.conf loads"))
		printf("#   error: %s\n", err);
	cfg_free(c);
	free(d.conf);
	free(d.man);
}

int
main(void)
{
	test_defaults();
	test_good();
	test_bad();
	test_store_uri();
	test_policy();
	test_answers();
	test_long();
	test_round_trip();
	test_ca_file();
	test_word_in();
	test_docs();
	return tap_done();
}
