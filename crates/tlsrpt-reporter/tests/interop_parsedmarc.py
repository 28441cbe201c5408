"""Runs parsedmarc (a TLS-RPT receiver we do not control) and dkimpy over files the Rust test
wrote, in one process. Usage: python interop_parsedmarc.py manifest.json; prints one JSON
object with a result per file on stdout."""
import json
import sys

import dkim
import parsedmarc


def totals(report):
    policies = report["policies"]
    return {
        "successful": sum(p["successful_session_count"] for p in policies),
        "failed": sum(p["failed_session_count"] for p in policies),
        "policies": len(policies),
        "details": sum(len(p.get("failure_details", [])) for p in policies),
        "detail_sessions": sum(
            d["failed_session_count"] for p in policies for d in p.get("failure_details", [])
        ),
        "policy_types": [p["policy_type"] for p in policies],
        "policy_domains": [p["policy_domain"] for p in policies],
        "report_id": report["report_id"],
        "organization_name": report["organization_name"],
        "contact_info": report["contact_info"],
        "begin_date": str(report["begin_date"]),
        "end_date": str(report["end_date"]),
    }


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    dns = {k.lower().rstrip("."): v.encode() for k, v in manifest["dns"].items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return dns.get(name.lower().rstrip("."))

    out = {}
    for item in manifest["files"]:
        path, kind = item["path"], item["kind"]
        res = {}
        try:
            if kind == "json":
                with open(path, "rb") as f:
                    rep = parsedmarc.parse_smtp_tls_report_json(f.read())
                res["totals"] = totals(rep)
            else:
                parsed = parsedmarc.parse_report_file(path, offline=True)
                res["report_type"] = parsed["report_type"]
                res["totals"] = totals(parsed["report"])
            if kind == "eml":
                with open(path, "rb") as f:
                    msg = f.read()
                d = dkim.DKIM(msg, tlsrpt="strict")
                # The topmost signature is the RSA one (dkimpy needs PyNaCl for Ed25519).
                res["dkim_rsa"] = bool(d.verify(idx=0, dnsfunc=dnsfunc))
                tampered = msg.replace(b"TLS-Report-Domain: ", b"TLS-Report-Domain: x", 1)
                res["dkim_tampered"] = bool(
                    dkim.DKIM(tampered, tlsrpt="strict").verify(idx=0, dnsfunc=dnsfunc)
                )
        except Exception as e:  # noqa: BLE001 - report every failure to the Rust side
            res["error"] = f"{type(e).__name__}: {e}"
        out[path] = res
    json.dump(out, sys.stdout)


main()
