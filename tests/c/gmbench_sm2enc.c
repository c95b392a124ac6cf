/*
 * OpenSSL 3 SM2 encryption / decryption of 32 bytes, for tests/benches/gmbench.rs:
 * `openssl speed` has no SM2 encryption test, so the benchmark builds this at run time
 * (cc -O2 gmbench_sm2enc.c -lcrypto) and runs it once per sample.
 *
 *   gmbench_sm2enc enc|dec SECONDS
 *
 * Makes an SM2 key, checks that decrypt(encrypt(m)) == m, then calls EVP_PKEY_encrypt
 * (or EVP_PKEY_decrypt of one fixed ciphertext) on one initialised context for about
 * SECONDS of wall time. Prints the calls per second of process CPU time (as
 * `openssl speed` counts), or an error on stderr with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "gmbench_sm2enc: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "enc") != 0 && strcmp(argv[1], "dec") != 0))
        return fail("usage: gmbench_sm2enc enc|dec SECONDS");
    int enc = strcmp(argv[1], "enc") == 0;
    double secs = atof(argv[2]);
    if (!(secs > 0))
        return fail("SECONDS must be positive");

    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    if (key == NULL)
        return fail("SM2 key generation");
    EVP_PKEY_CTX *ectx = EVP_PKEY_CTX_new(key, NULL);
    EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new(key, NULL);
    if (ectx == NULL || dctx == NULL || EVP_PKEY_encrypt_init(ectx) <= 0
        || EVP_PKEY_decrypt_init(dctx) <= 0)
        return fail("context setup");

    unsigned char msg[32], ct[256], pt[256];
    for (int i = 0; i < 32; i++)
        msg[i] = (unsigned char)(0x30 + i);
    size_t ctlen = sizeof ct, ptlen = sizeof pt;
    if (EVP_PKEY_encrypt(ectx, ct, &ctlen, msg, sizeof msg) <= 0)
        return fail("encrypt");
    if (EVP_PKEY_decrypt(dctx, pt, &ptlen, ct, ctlen) <= 0)
        return fail("decrypt");
    if (ptlen != sizeof msg || memcmp(pt, msg, sizeof msg) != 0)
        return fail("decrypt(encrypt(m)) != m");

    double wall = now(CLOCK_MONOTONIC), cpu = now(CLOCK_PROCESS_CPUTIME_ID);
    unsigned long n = 0;
    while (now(CLOCK_MONOTONIC) - wall < secs) {
        for (int i = 0; i < 8; i++) {
            int rc;
            if (enc) {
                size_t l = sizeof pt;
                rc = EVP_PKEY_encrypt(ectx, pt, &l, msg, sizeof msg);
            } else {
                size_t l = sizeof pt;
                rc = EVP_PKEY_decrypt(dctx, pt, &l, ct, ctlen);
            }
            if (rc <= 0)
                return fail(enc ? "encrypt" : "decrypt");
        }
        n += 8;
    }
    printf("%.3f\n", (double)n / (now(CLOCK_PROCESS_CPUTIME_ID) - cpu));
    EVP_PKEY_CTX_free(ectx);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(key);
    return 0;
}
