/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for what `tlspolicy check` parses from an MX (cli/probe.c):
 * SMTP reply lines, the EHLO reply's STARTTLS keyword, and the MTA-STS
 * pattern match. Each LF-terminated line goes to probe_reply_line(): a
 * final line's code must be its first three digits (200..599), a
 * continuation line must have '-' after them. The whole input (cut at a
 * NUL) goes to probe_ehlo_starttls(), which may only say yes when some
 * line holds "STARTTLS" at offset 4. The first line is also a pattern and
 * the second a host for probe_sts_covers(): a match without "*." means
 * equal lengths, with it one label more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *nl;
	char *text, *host, *p;
	size_t off = 0, plen;
	int code, starttls = 0;

	while (off < size) {
		nl = memchr(buf + off, '\n', size - off);
		plen = nl ? (size_t)(nl - (buf + off)) + 1 : size - off;
		code = probe_reply_line(buf + off, plen);
		if (code > 0) {
			if (code < 200 || code > 599 ||
			    code != (buf[off] - '0') * 100 +
					(buf[off + 1] - '0') * 10 +
					(buf[off + 2] - '0'))
				abort();
		} else if (code == 0) {
			if (plen < 4 || buf[off + 3] != '-')
				abort();
		} else if (code != -1)
			abort();
		off += plen;
	}

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (p = text; *p != '\0';
	     p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0))
		if (strcspn(p, "\n") >= 12 &&
		    strncasecmp(p + 4, "STARTTLS", 8) == 0)
			starttls = 1;
	if (probe_ehlo_starttls(text) && !starttls)
		abort();

	plen = strcspn(text, "\n");
	host = text[plen] == '\n' ? text + plen + 1 : text + plen;
	host[strcspn(host, "\n")] = '\0';
	if (probe_sts_covers(text, plen, host)) {
		if (plen > 2 && text[0] == '*' && text[1] == '.') {
			if (strlen(host) < plen || strchr(host, '.') == NULL ||
			    strncasecmp(strchr(host, '.'), text + 1,
					plen - 1) != 0)
				abort();
		} else if (strlen(host) != plen)
			abort();
	}
	free(text);
	return 0;
}
