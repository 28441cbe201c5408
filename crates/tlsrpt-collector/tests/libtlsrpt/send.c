/* Test helper: sends fixed delivery requests through the real libtlsrpt (Debian's
 * libtlsrpt0-dev), so tests can compare its bytes with ours. Linked only into this helper,
 * never into tlsrpt. Usage: send SOCKET_PATH */
#include <stdio.h>
#include <tlsrpt.h>

#define CHECK(x) do { int rc_ = (x); if (rc_ != 0) { fprintf(stderr, "%s: %d\n", #x, rc_); return 1; } } while (0)

int main(int argc, char **argv) {
  struct tlsrpt_connection_t *con = NULL;
  struct tlsrpt_dr_t *dr = NULL;
  if (argc != 2) return 2;
  CHECK(tlsrpt_open(&con, argv[1]));

  /* 1: STS success (DATAGRAM.md §5) */
  CHECK(tlsrpt_init_delivery_request(&dr, con, "example.com", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_STS, "example.com"));
  CHECK(tlsrpt_add_policy_string(dr, "version: STSv1"));
  CHECK(tlsrpt_add_policy_string(dr, "mode: enforce"));
  CHECK(tlsrpt_add_policy_string(dr, "mx: mail.example.com"));
  CHECK(tlsrpt_add_policy_string(dr, "max_age: 604800"));
  CHECK(tlsrpt_add_mx_host_pattern(dr, "mail.example.com"));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
  CHECK(tlsrpt_finish_delivery_request(&dr));

  /* 2: DANE failure with a Postfix multi-line EHLO reply */
  CHECK(tlsrpt_init_delivery_request(&dr, con, "example.org", "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt"));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_TLSA, "example.org"));
  CHECK(tlsrpt_add_policy_string(dr, "3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"));
  CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_VALIDATION_FAILURE, "192.0.2.1", "mx.example.org",
        "250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS", "198.51.100.7", NULL, "self-signed_certificate"));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
  CHECK(tlsrpt_finish_delivery_request(&dr));

  /* 3: no-policy-found, NULL policy domain, STARTTLS missing, IPv6 */
  CHECK(tlsrpt_init_delivery_request(&dr, con, "example.net", "v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net"));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_NO_POLICY_FOUND, NULL));
  CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_STARTTLS_NOT_SUPPORTED, "2001:db8::1", "mx.example.net",
        NULL, "2001:db8::25", NULL, NULL));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
  CHECK(tlsrpt_finish_delivery_request(&dr));

  /* 4: escaping: quote, backslash, control bytes, DEL, UTF-8; every failure field */
  CHECK(tlsrpt_init_delivery_request(&dr, con, "xn--bcher-kva.example", "v=TLSRPTv1; rua=mailto:\"q\"\\x@example\t\x01\x7f\xc3\xbc"));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_STS, "xn--bcher-kva.example"));
  CHECK(tlsrpt_add_policy_string(dr, "line\nbreak\rcr\bbs\fff/slash\x1f"));
  CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_STS_POLICY_FETCH_ERROR, "192.0.2.9", "mx.xn--bcher-kva.example",
        "mx.xn--bcher-kva.example", "198.51.100.9", "https://example/info?a=\"1\"", "http-404"));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
  CHECK(tlsrpt_finish_delivery_request(&dr));

  /* 5: two policies (sts success + tlsa with two failures, one an unknown code) */
  CHECK(tlsrpt_init_delivery_request(&dr, con, "example.com", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_STS, "example.com"));
  CHECK(tlsrpt_add_mx_host_pattern(dr, "*.example.com"));
  CHECK(tlsrpt_add_mx_host_pattern(dr, "mx.example.net"));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
  CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_TLSA, "mx.example.com"));
  CHECK(tlsrpt_add_policy_string(dr, "3 1 1 AB"));
  CHECK(tlsrpt_add_policy_string(dr, "2 0 1 CD"));
  CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_TLSA_INVALID, "192.0.2.1", NULL, NULL, NULL, NULL, NULL));
  CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_UNFINISHED_POLICY, NULL, NULL, NULL, NULL, NULL, NULL));
  CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
  CHECK(tlsrpt_finish_delivery_request(&dr));

  CHECK(tlsrpt_close(&con));
  return 0;
}
