/*
 * send.c: a fixed set of delivery requests sent through the real libtlsrpt, for tlsrpt's
 * interop test (crates/tlsrpt/tests/interop_libtlsrpt.rs). Ours (MIT OR Apache-2.0); it is
 * only linked against libtlsrpt (LGPL-3.0-or-later) at test time, never shipped.
 *
 * Usage: send SOCKET
 * Exit 0 when every libtlsrpt call returned 0; otherwise prints the failing call and exits 1.
 *
 * The scenario (the Rust test checks the collector's reports against exactly this):
 *   sts.interop.example   STS policy: 3 successes; 2 x certificate-expired (same details);
 *                         1 x sts-policy-fetch-error from an IPv6 sender with additional info.
 *   tlsa.interop.example  TLSA policy: 2 successes; 1 x validation-failure with Postfix's
 *                         multi-line EHLO reply and a failure-reason-code.
 *   npf.interop.example   no-policy-found: 3 successes with the policy domain, 1 success with a
 *                         NULL policy domain (Postfix before 20250924); 1 x
 *                         starttls-not-supported, IPv6, no EHLO.
 *   multi.interop.example one request with two policies: sts success + tlsa dane-required.
 */
#include <stdio.h>
#include <stdlib.h>
#include <tlsrpt.h>

static int check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "send: %s failed: %d (%s)\n", what, rc, tlsrpt_strerror(rc));
        exit(1);
    }
    return rc;
}

#define CHECK(call) check((call), #call)

static const char *STS_RECORD = "v=TLSRPTv1; rua=mailto:tlsrpt@sts.interop.example";
static const char *TLSA_RECORD = "v=TLSRPTv1;rua=https://rpt.tlsa.interop.example/tlsrpt";
static const char *NPF_RECORD = "v=TLSRPTv1; rua=mailto:a@npf.interop.example,mailto:b@npf.interop.example";
static const char *MULTI_RECORD = "v=TLSRPTv1; rua=mailto:tlsrpt@multi.interop.example";
static const char *TLSA_RR = "3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

static void sts_policy(struct tlsrpt_dr_t *dr) {
    CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_STS, "sts.interop.example"));
    CHECK(tlsrpt_add_policy_string(dr, "version: STSv1"));
    CHECK(tlsrpt_add_policy_string(dr, "mode: enforce"));
    CHECK(tlsrpt_add_policy_string(dr, "mx: *.mail.sts.interop.example"));
    CHECK(tlsrpt_add_policy_string(dr, "max_age: 604800"));
    CHECK(tlsrpt_add_mx_host_pattern(dr, "*.mail.sts.interop.example"));
}

int main(int argc, char **argv) {
    struct tlsrpt_connection_t *con = NULL;
    struct tlsrpt_dr_t *dr = NULL;
    int i;

    if (argc != 2) {
        fprintf(stderr, "usage: send SOCKET\n");
        return 2;
    }
    /* Block instead of dropping on a full queue: the test counts exactly. */
    tlsrpt_set_blocking();
    CHECK(tlsrpt_open(&con, argv[1]));

    /* sts: 3 successes */
    for (i = 0; i < 3; i++) {
        CHECK(tlsrpt_init_delivery_request(&dr, con, "sts.interop.example", STS_RECORD));
        sts_policy(dr);
        CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
        CHECK(tlsrpt_finish_delivery_request(&dr));
    }
    /* sts: 2 identical certificate-expired failures */
    for (i = 0; i < 2; i++) {
        CHECK(tlsrpt_init_delivery_request(&dr, con, "sts.interop.example", STS_RECORD));
        sts_policy(dr);
        CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_CERTIFICATE_EXPIRED, "192.0.2.1",
              "mx1.mail.sts.interop.example", "mx1.mail.sts.interop.example", "198.51.100.7",
              NULL, NULL));
        CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
        CHECK(tlsrpt_finish_delivery_request(&dr));
    }
    /* sts: 1 policy fetch error, IPv6 sender, additional information */
    CHECK(tlsrpt_init_delivery_request(&dr, con, "sts.interop.example", STS_RECORD));
    sts_policy(dr);
    CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_STS_POLICY_FETCH_ERROR, "2001:db8::1",
          NULL, NULL, NULL, "https://mta-sts.sts.interop.example/.well-known/mta-sts.txt", NULL));
    CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
    CHECK(tlsrpt_finish_delivery_request(&dr));

    /* tlsa: 2 successes */
    for (i = 0; i < 2; i++) {
        CHECK(tlsrpt_init_delivery_request(&dr, con, "tlsa.interop.example", TLSA_RECORD));
        CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_TLSA, "tlsa.interop.example"));
        CHECK(tlsrpt_add_policy_string(dr, TLSA_RR));
        CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
        CHECK(tlsrpt_finish_delivery_request(&dr));
    }
    /* tlsa: 1 validation failure with Postfix's multi-line EHLO reply */
    CHECK(tlsrpt_init_delivery_request(&dr, con, "tlsa.interop.example", TLSA_RECORD));
    CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_TLSA, "tlsa.interop.example"));
    CHECK(tlsrpt_add_policy_string(dr, TLSA_RR));
    CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_VALIDATION_FAILURE, "192.0.2.1",
          "mx.tlsa.interop.example",
          "250-mx.tlsa.interop.example\r\n250-PIPELINING\r\n250 STARTTLS",
          "198.51.100.7", NULL, "self-signed_certificate"));
    CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
    CHECK(tlsrpt_finish_delivery_request(&dr));

    /* no-policy-found: 3 successes with the policy domain, 1 with NULL */
    for (i = 0; i < 4; i++) {
        CHECK(tlsrpt_init_delivery_request(&dr, con, "npf.interop.example", NPF_RECORD));
        CHECK(tlsrpt_init_policy(dr, TLSRPT_NO_POLICY_FOUND, i < 3 ? "npf.interop.example" : NULL));
        CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
        CHECK(tlsrpt_finish_delivery_request(&dr));
    }
    /* no-policy-found: 1 starttls-not-supported, IPv6 */
    CHECK(tlsrpt_init_delivery_request(&dr, con, "npf.interop.example", NPF_RECORD));
    CHECK(tlsrpt_init_policy(dr, TLSRPT_NO_POLICY_FOUND, "npf.interop.example"));
    CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_STARTTLS_NOT_SUPPORTED, "2001:db8::1",
          "mx.npf.interop.example", NULL, "2001:db8::25", NULL, NULL));
    CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
    CHECK(tlsrpt_finish_delivery_request(&dr));

    /* one request, two policies: sts success + tlsa dane-required */
    CHECK(tlsrpt_init_delivery_request(&dr, con, "multi.interop.example", MULTI_RECORD));
    CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_STS, "multi.interop.example"));
    CHECK(tlsrpt_add_policy_string(dr, "version: STSv1"));
    CHECK(tlsrpt_add_policy_string(dr, "mode: testing"));
    CHECK(tlsrpt_add_mx_host_pattern(dr, "mx.multi.interop.example"));
    CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_SUCCESS));
    CHECK(tlsrpt_init_policy(dr, TLSRPT_POLICY_TLSA, "multi.interop.example"));
    CHECK(tlsrpt_add_policy_string(dr, TLSA_RR));
    CHECK(tlsrpt_add_delivery_request_failure(dr, TLSRPT_DANE_REQUIRED, "192.0.2.2",
          "mx.multi.interop.example", NULL, "198.51.100.8", NULL, NULL));
    CHECK(tlsrpt_finish_policy(dr, TLSRPT_FINAL_FAILURE));
    CHECK(tlsrpt_finish_delivery_request(&dr));

    CHECK(tlsrpt_close(&con));
    return 0;
}
