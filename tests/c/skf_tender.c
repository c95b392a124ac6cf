/*
 * The tendering flow through libukey_skf.so, as a tendering client would walk it:
 * compiled against include/skf.h, the library loaded with dlopen, every function
 * resolved with dlsym and called through a pointer of the header's prototype.
 *
 *   skf_tender LIB DIR init   enumerate, connect, device info, device auth, create the
 *                             application with PINs, create a container, generate the SM2
 *                             signing key; writes DIR/signpub.bin (ECCPUBLICKEYBLOB)
 *   skf_tender LIB DIR use    verify PIN, import DIR/cert.der, SM3-with-Z digest of
 *                             DIR/msg.txt, sign, verify; import DIR/envelope.bin
 *                             (ENVELOPEDKEYBLOB); import DIR/sesskey.blob (ECCCIPHERBLOB
 *                             from OpenSSL's SM2 encryption) and SM4-CBC-decrypt
 *                             DIR/data.enc with DIR/iv.bin; writes DIR/e.bin, DIR/sig.bin,
 *                             DIR/plain.out
 * Exit status 0 on success; otherwise the failing step is printed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skf.h"

#define FUNCS(X) X(SKF_EnumDev) X(SKF_ConnectDev) X(SKF_DisConnectDev) X(SKF_GetDevInfo) \
    X(SKF_GetDevState) X(SKF_GenRandom) X(SKF_SetSymmKey) X(SKF_EncryptInit) X(SKF_Encrypt) \
    X(SKF_CloseHandle) X(SKF_DevAuth) X(SKF_CreateApplication) X(SKF_OpenApplication) \
    X(SKF_CloseApplication) X(SKF_VerifyPIN) X(SKF_CreateContainer) X(SKF_OpenContainer) \
    X(SKF_CloseContainer) X(SKF_GenECCKeyPair) X(SKF_ExportPublicKey) X(SKF_GetContainerType) \
    X(SKF_ImportCertificate) X(SKF_ExportCertificate) X(SKF_DigestInit) X(SKF_Digest) \
    X(SKF_ECCSignData) X(SKF_ECCVerify) X(SKF_ImportECCKeyPair) X(SKF_ImportSessionKey) \
    X(SKF_DecryptInit) X(SKF_Decrypt) X(SKF_LockDev) X(SKF_UnlockDev) X(SKF_ClearSecureState) \
    X(SKF_EnumContainer)

#define DECL(f) static __typeof__(f) *p_##f;
FUNCS(DECL)

#define CHECK(call) do { ULONG rv_ = (call); if (rv_ != SAR_OK) { \
    fprintf(stderr, "%s:%d %s = 0x%08X\n", __FILE__, __LINE__, #call, (unsigned)rv_); exit(1); } } while (0)
#define EXPECT(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d expected %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)

static const char *dir;

static BYTE *slurp(const char *name, ULONG *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    BYTE *b = malloc(n + 1);
    if (!b || fread(b, 1, n, f) != (size_t)n) { perror(path); exit(1); }
    fclose(f);
    *len = (ULONG)n;
    return b;
}

static void spit(const char *name, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) { perror(path); exit(1); }
    fclose(f);
}

static DEVHANDLE connect_first(void) {
    ULONG len = 0;
    CHAR names[1024];
    CHECK(p_SKF_EnumDev(TRUE, NULL, &len));
    EXPECT(len > 2 && len <= sizeof names);
    CHECK(p_SKF_EnumDev(TRUE, names, &len));
    EXPECT(names[len - 1] == 0 && names[len - 2] == 0);
    ULONG state = 99;
    CHECK(p_SKF_GetDevState(names, &state));
    EXPECT(state == DEV_PRESENT_STATE);
    DEVHANDLE h = NULL;
    CHECK(p_SKF_ConnectDev(names, &h));
    DEVINFO info;
    memset(&info, 0xEE, sizeof info);
    CHECK(p_SKF_GetDevInfo(h, &info));
    EXPECT(info.Version.major == 1);
    EXPECT((info.AlgAsymCap & SGD_SM2_1) == SGD_SM2_1);
    EXPECT((info.AlgAsymCap & SGD_SM2_1_LEGACY) == SGD_SM2_1_LEGACY);
    EXPECT((info.AlgSymCap & SGD_SM4_CBC) == SGD_SM4_CBC);
    EXPECT(info.DevAuthAlgId == SGD_SM4_ECB);
    EXPECT(memchr(info.SerialNumber, 0, sizeof info.SerialNumber) != NULL);
    printf("device %s serial %s manufacturer %s\n", (char *)names, (char *)info.SerialNumber,
           (char *)info.Manufacturer);
    return h;
}

static void dev_auth(DEVHANDLE h) {
    BYTE rnd[16] = {0}, crypt[16];
    ULONG clen = sizeof crypt;
    HANDLE k = NULL;
    BLOCKCIPHERPARAM none;
    memset(&none, 0, sizeof none);
    CHECK(p_SKF_GenRandom(h, rnd, 8)); /* 8 bytes, zero-padded to a block */
    CHECK(p_SKF_SetSymmKey(h, (BYTE *)"1234567812345678", SGD_SM4_ECB, &k));
    CHECK(p_SKF_EncryptInit(k, none));
    CHECK(p_SKF_Encrypt(k, rnd, 16, crypt, &clen));
    EXPECT(clen == 16);
    CHECK(p_SKF_CloseHandle(k));
    CHECK(p_SKF_DevAuth(h, crypt, clen));
}

static int do_init(void) {
    DEVHANDLE h = connect_first();
    CHECK(p_SKF_LockDev(h, 0xFFFFFFFF));
    CHECK(p_SKF_LockDev(h, 0xFFFFFFFF)); /* re-entrant, as GmSSL calls it */
    dev_auth(h);
    HAPPLICATION app = NULL;
    CHECK(p_SKF_CreateApplication(h, (LPSTR)"tender", (LPSTR)"12345678", 6, (LPSTR)"123456", 6,
                                  SECURE_ANYONE_ACCOUNT, &app));
    ULONG retry = 0;
    CHECK(p_SKF_VerifyPIN(app, USER_TYPE, (LPSTR)"123456", &retry));
    HCONTAINER c = NULL;
    CHECK(p_SKF_CreateContainer(app, (LPSTR)"bidder", &c));
    ECCPUBLICKEYBLOB pub;
    CHECK(p_SKF_GenECCKeyPair(c, SGD_SM2_1, &pub));
    EXPECT(pub.BitLen == 256);
    BYTE zero[32] = {0};
    EXPECT(memcmp(pub.XCoordinate, zero, 32) == 0); /* right-aligned */
    ULONG type = 0;
    CHECK(p_SKF_GetContainerType(c, &type));
    EXPECT(type == 2);
    spit("signpub.bin", &pub, sizeof pub);
    CHECK(p_SKF_CloseContainer(c));
    CHECK(p_SKF_CloseApplication(app));
    CHECK(p_SKF_UnlockDev(h));
    CHECK(p_SKF_UnlockDev(h));
    CHECK(p_SKF_DisConnectDev(h));
    printf("init ok\n");
    return 0;
}

static int do_use(void) {
    DEVHANDLE h = connect_first();
    HAPPLICATION app = NULL;
    CHECK(p_SKF_OpenApplication(h, (LPSTR)"tender", &app));
    ULONG retry = 0;
    CHECK(p_SKF_VerifyPIN(app, USER_TYPE, (LPSTR)"123456", &retry));
    ULONG len = 0;
    CHECK(p_SKF_EnumContainer(app, NULL, &len));
    EXPECT(len == strlen("bidder") + 2);
    HCONTAINER c = NULL;
    CHECK(p_SKF_OpenContainer(app, (LPSTR)"bidder", &c));
    ULONG type = 0;
    CHECK(p_SKF_GetContainerType(c, &type));
    EXPECT(type == 2);

    /* certificate */
    ULONG cert_len = 0;
    BYTE *cert = slurp("cert.der", &cert_len);
    CHECK(p_SKF_ImportCertificate(c, TRUE, cert, cert_len));
    ULONG out_len = 0;
    CHECK(p_SKF_ExportCertificate(c, TRUE, NULL, &out_len));
    EXPECT(out_len == cert_len);
    BYTE *back = malloc(out_len);
    CHECK(p_SKF_ExportCertificate(c, TRUE, back, &out_len));
    EXPECT(memcmp(back, cert, cert_len) == 0);

    /* SM3 with Z, sign, verify */
    ECCPUBLICKEYBLOB pub;
    ULONG pub_len = sizeof pub;
    CHECK(p_SKF_ExportPublicKey(c, TRUE, (BYTE *)&pub, &pub_len));
    EXPECT(pub_len == 132);
    ULONG msg_len = 0;
    BYTE *msg = slurp("msg.txt", &msg_len);
    HANDLE hh = NULL;
    CHECK(p_SKF_DigestInit(h, SGD_SM3, &pub, (BYTE *)"1234567812345678", 16, &hh));
    BYTE e[32];
    ULONG e_len = 0;
    CHECK(p_SKF_Digest(hh, msg, msg_len, NULL, &e_len));
    EXPECT(e_len == 32);
    CHECK(p_SKF_Digest(hh, msg, msg_len, e, &e_len));
    CHECK(p_SKF_CloseHandle(hh));
    ECCSIGNATUREBLOB sig;
    CHECK(p_SKF_ECCSignData(c, e, 32, &sig));
    CHECK(p_SKF_ECCVerify(h, &pub, e, 32, &sig));
    e[0] ^= 1;
    EXPECT(p_SKF_ECCVerify(h, &pub, e, 32, &sig) != SAR_OK);
    e[0] ^= 1;
    spit("e.bin", e, 32);
    spit("sig.bin", &sig, sizeof sig);

    /* the encryption key pair, made outside the token */
    ULONG env_len = 0;
    BYTE *env = slurp("envelope.bin", &env_len);
    EXPECT(env_len >= sizeof(ENVELOPEDKEYBLOB));
    CHECK(p_SKF_ImportECCKeyPair(c, (PENVELOPEDKEYBLOB)env));
    ECCPUBLICKEYBLOB encpub;
    ULONG encpub_len = sizeof encpub;
    CHECK(p_SKF_ExportPublicKey(c, FALSE, (BYTE *)&encpub, &encpub_len));
    EXPECT(memcmp(&encpub, &((PENVELOPEDKEYBLOB)env)->PubKey, sizeof encpub) == 0);

    /* a session key wrapped by OpenSSL, then the bid */
    ULONG sk_len = 0;
    BYTE *sk = slurp("sesskey.blob", &sk_len);
    HANDLE key = NULL;
    CHECK(p_SKF_ImportSessionKey(c, SGD_SM4_CBC, sk, sk_len, &key));
    ULONG iv_len = 0, ct_len = 0;
    BYTE *iv = slurp("iv.bin", &iv_len);
    BYTE *ct = slurp("data.enc", &ct_len);
    BLOCKCIPHERPARAM p;
    memset(&p, 0, sizeof p);
    memcpy(p.IV, iv, 16);
    p.IVLen = 16;
    p.PaddingType = 1;
    CHECK(p_SKF_DecryptInit(key, p));
    ULONG pt_len = 0;
    CHECK(p_SKF_Decrypt(key, ct, ct_len, NULL, &pt_len));
    BYTE *pt = malloc(pt_len + 1);
    CHECK(p_SKF_Decrypt(key, ct, ct_len, pt, &pt_len));
    spit("plain.out", pt, pt_len);
    CHECK(p_SKF_CloseHandle(key));

    CHECK(p_SKF_ClearSecureState(app));
    CHECK(p_SKF_CloseContainer(c));
    CHECK(p_SKF_CloseApplication(app));
    CHECK(p_SKF_DisConnectDev(h));
    printf("use ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIB DIR init|use\n", argv[0]);
        return 2;
    }
    EXPECT(sizeof(ULONG) == 4 && sizeof(BOOL) == 4 && sizeof(DEVINFO) == 294);
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
#define LOAD(f) p_##f = (__typeof__(f) *)dlsym(lib, #f); EXPECT(p_##f != NULL);
    FUNCS(LOAD)
    dir = argv[2];
    if (strcmp(argv[3], "init") == 0) return do_init();
    if (strcmp(argv[3], "use") == 0) return do_use();
    return 2;
}
