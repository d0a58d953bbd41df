# SPDX-License-Identifier: BSD-2-Clause
"""TLS-RPT report builder end to end (SPEC C3): tests/lab/rptgen builds a
report and its mail from a fixed input; here the JSON is checked against a
JSON schema written from RFC 8460 §4 (tests/lab/tlsrpt-schema.json), the
attachment is gunzipped and compared with it, and the mail is parsed with
Python's email package: structure, headers, file name, content types.
Nothing is started and nothing leaves the temporary directory.
"""
import email
import email.policy
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import TOP_BUILDDIR, TOP_SRCDIR, done, is_eq, ok  # noqa: E402

import jsonschema  # noqa: E402

RPTGEN = os.path.join(TOP_BUILDDIR, "tests", "lab", "rptgen")
SCHEMA = os.path.join(TOP_SRCDIR, "tests", "lab", "tlsrpt-schema.json")
FNAME = ("example.org!example.com!1704412800!1704499199!1.json.gz")

tmp = tempfile.mkdtemp(prefix="rpt_report.")
try:
    out = subprocess.run([RPTGEN, tmp], capture_output=True, text=True,
                         timeout=30)
    ok(out.returncode == 0, "rptgen runs", out.stderr)
    is_eq(out.stdout.strip(), FNAME, "RFC 8460 §5.3 file name")

    with open(os.path.join(tmp, "report.json"), "rb") as f:
        raw = f.read()
    report = json.loads(raw)
    with open(SCHEMA) as f:
        schema = json.load(f)
    checker = jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.FormatChecker())
    errors = [e.message for e in checker.iter_errors(report)]
    ok(not errors, "report valid against the RFC 8460 schema", errors)
    # The schema itself must be able to fail.
    broken = json.loads(raw)
    broken["policies"] = broken["policies"][0]
    ok(not checker.is_valid(broken), "schema refuses a non-array policies")
    broken = json.loads(raw)
    broken["policies"][0]["failure-details"][0]["result-type"] = "oops"
    ok(not checker.is_valid(broken), "schema refuses an unknown result-type")

    is_eq(report["date-range"], {"start-datetime": "2024-01-05T00:00:00Z",
                                 "end-datetime": "2024-01-05T23:59:59Z"},
          "date-range is the whole UTC day")
    is_eq([p["policy"]["policy-type"] for p in report["policies"]],
          ["sts", "tlsa", "no-policy-found"], "policy types in order")
    sts = report["policies"][0]
    is_eq(sts["policy"]["mx-host"], ["*.mail.example.com"], "mx-host array")
    is_eq(sts["summary"], {"total-successful-session-count": 1200,
                           "total-failure-session-count": 5}, "sts summary")
    is_eq(sts["failure-details"][1],
          {"result-type": "sts-policy-fetch-error",
           "failed-session-count": 2,
           "additional-information":
           "https://mta-sts.example.com/.well-known/mta-sts.txt"},
          "absent failure-detail fields omitted")
    is_eq(report["policies"][1]["failure-details"][0]["receiving-ip"],
          "2001:db8::25", "IPv6 receiving-ip")
    ok("failure-details" not in report["policies"][2],
       "no failure-details without failures")

    with open(os.path.join(tmp, FNAME), "rb") as f:
        gz = f.read()
    is_eq(gz[:3], b"\x1f\x8b\x08", "attachment file is gzip")
    is_eq(gzip.decompress(gz), raw, "attachment gunzips to the JSON")

    with open(os.path.join(tmp, "mail.eml"), "rb") as f:
        mail_raw = f.read()
    ok(b"\n" not in mail_raw.replace(b"\r\n", b""), "CRLF line ends")
    msg = email.message_from_bytes(mail_raw, policy=email.policy.default)
    is_eq(msg.get_content_type(), "multipart/report", "multipart/report")
    is_eq(msg.get_param("report-type"), "tlsrpt", "report-type=tlsrpt")
    is_eq(msg["From"], "tlsrpt-noreply@example.org", "From")
    is_eq(msg["To"], "tlsrpt@example.com", "To")
    is_eq(msg["Subject"], "Report Domain: example.com Submitter: "
          "example.org Report-ID: <20240105T000000Z.example.com.1>",
          "Subject per RFC 8460 §5.3")
    is_eq(msg["TLS-Report-Domain"], "example.com", "TLS-Report-Domain")
    is_eq(msg["TLS-Report-Submitter"], "example.org", "TLS-Report-Submitter")
    is_eq(msg["TLS-Required"], "No", "TLS-Required: No")
    is_eq(msg["MIME-Version"], "1.0", "MIME-Version")
    ok(msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith(
        "@example.org>"), "Message-ID", msg["Message-ID"])
    ok(msg["Date"].datetime is not None and
       msg["Date"].datetime.timestamp() == 1704506400, "Date",
       msg["Date"])
    is_eq(len(msg.defects), 0, "no MIME defects")
    parts = list(msg.iter_parts())
    is_eq([p.get_content_type() for p in parts],
          ["text/plain", "application/tlsrpt+gzip"], "two parts")
    ok("example.com" in parts[0].get_content(), "text part names the domain")
    is_eq(parts[1].get_filename(), FNAME, "attachment file name")
    is_eq(parts[1].get_content_disposition(), "attachment", "disposition")
    is_eq(parts[1]["Content-Transfer-Encoding"], "base64", "base64")
    body = parts[1].get_payload(decode=True)
    is_eq(body, gz, "attachment bytes are the gzip file")
    is_eq(json.loads(gzip.decompress(body)), report,
          "mail attachment parses back to the report")
    ok(all(len(line) <= 78 for line in mail_raw.split(b"\r\n")
           if not line.startswith(b"Subject:")),
       "lines within 78 characters")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
done()
