/*
 * skf_quirky_vendor.c - a canned "vendor" GM/T 0016 library with the variations the
 * vendor-SKF bridge must tolerate (docs/skf-bridge.md), built by tests/tests/skf_bridge.rs
 * with `cc -shared -fPIC` against include/skf.h:
 *
 *  - the legacy SM2 ID set: AlgAsymCap 0x00020700; SKF_GenECCKeyPair makes a signing key
 *    for SGD_SM2_1 = 0x00020100 and, for 0x00020200 (legacy SGD_SM2_2), a key-exchange
 *    key that refuses to sign;
 *  - SKF_GetPINInfo writing its BOOL as 8 bytes (a `long` on LP64);
 *  - missing optional symbols: no SKF_SetLabel, SKF_GenRandom or SKF_ECCDecrypt;
 *  - an RSA-only device (AlgAsymCap = SGD_RSA), whose GenECCKeyPair is not supported.
 *
 * Behaviour is canned: the SM2 public key is the curve generator G (private key 1), and
 * ECCSignData answers r = s = the 32-byte digest it was given, so the test sees exactly
 * what the bridge sent. RSASignData answers 256 bytes: 0xAB filler, then the input.
 * Built with -DOMIT_REQUIRED, SKF_VerifyPIN is missing too (a required symbol); with
 * -DLYING_LENGTHS it reports more bytes than the buffer it was given and an ECC public key
 * of 4096 bits; with -DCAPS_2012 the SM2 device advertises the 2012 ID set (0x00020F00) while still taking
 * only the legacy ID, so the bridge's fallback is exercised.
 */
#include <string.h>
#include "skf.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct { int rsa; int connected; } Dev;
typedef struct { Dev *dev; int user; int retries; } App;
typedef struct { App *app; int rsa; } Cont;

static Dev devs[2] = { { 0, 0 }, { 1, 0 } };
static App apps[2] = { { &devs[0], 0, 6 }, { &devs[1], 0, 6 } };
static Cont conts[2] = { { &apps[0], 0 }, { &apps[1], 1 } };
static int sm2_container = 0; /* created "c1" */
static int sm2_key = 0;

static const BYTE GX[32] = { 0x32, 0xC4, 0xAE, 0x2C, 0x1F, 0x19, 0x81, 0x19, 0x5F, 0x99, 0x04,
    0x46, 0x6A, 0x39, 0xC9, 0x94, 0x8F, 0xE3, 0x0B, 0xBF, 0xF2, 0x66, 0x0B, 0xE1, 0x71, 0x5A,
    0x45, 0x89, 0x33, 0x4C, 0x74, 0xC7 };
static const BYTE GY[32] = { 0xBC, 0x37, 0x36, 0xA2, 0xF4, 0xF6, 0x77, 0x9C, 0x59, 0xBD, 0xCE,
    0xE3, 0x6B, 0x69, 0x21, 0x53, 0xD0, 0xA9, 0x87, 0x7C, 0xC6, 0x2A, 0x47, 0x40, 0x02, 0xDF,
    0x32, 0xE5, 0x21, 0x39, 0xF0, 0xA0 };

static ULONG put_list(const char *list, ULONG len, LPSTR out, ULONG *pulSize) {
    if (!pulSize) return SAR_INVALIDPARAMERR;
    if (!out) { *pulSize = len; return SAR_OK; }
    if (*pulSize < len) { *pulSize = len; return SAR_BUFFER_TOO_SMALL; }
    memcpy(out, list, len);
    *pulSize = len;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_EnumDev(BOOL bPresent, LPSTR szNameList, ULONG *pulSize) {
    (void)bPresent;
    return put_list("QUIRK-SM2\0QUIRK-RSA\0", 21, szNameList, pulSize);
}

EXPORT ULONG DEVAPI SKF_ConnectDev(LPSTR szName, DEVHANDLE *phDev) {
    if (!szName || !phDev) return SAR_INVALIDPARAMERR;
    if (strcmp((char *)szName, "QUIRK-SM2") == 0) *phDev = &devs[0];
    else if (strcmp((char *)szName, "QUIRK-RSA") == 0) *phDev = &devs[1];
    else return SAR_FAIL;
    ((Dev *)*phDev)->connected = 1;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_DisConnectDev(DEVHANDLE hDev) {
    if (hDev != &devs[0] && hDev != &devs[1]) return SAR_INVALIDHANDLEERR;
    ((Dev *)hDev)->connected = 0;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_GetDevInfo(DEVHANDLE hDev, DEVINFO *p) {
    Dev *d = (Dev *)hDev;
    if ((d != &devs[0] && d != &devs[1]) || !p) return SAR_INVALIDHANDLEERR;
    memset(p, 0, sizeof *p);
    p->Version.major = 1;
    strcpy((char *)p->Manufacturer, "Quirky Vendor");
    strcpy((char *)p->Issuer, "Quirky CA");
    strcpy((char *)p->Label, d->rsa ? "rsa key" : "sm2 key");
    strcpy((char *)p->SerialNumber, d->rsa ? "QR0001" : "QS0001");
#ifdef CAPS_2012
    p->AlgAsymCap = d->rsa ? 0x00010000 : 0x00020F00;
#else
    p->AlgAsymCap = d->rsa ? 0x00010000 : 0x00020700;
#endif
    p->AlgHashCap = 1;
    p->AlgSymCap = 0x401;
    p->DevAuthAlgId = d->rsa ? 0x101 : 0x401; /* the RSA device authenticates with SM1 */
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_EnumApplication(DEVHANDLE hDev, LPSTR szAppName, ULONG *pulSize) {
    (void)hDev;
#ifdef LYING_LENGTHS
    /* Claims to have written more than the buffer holds. */
    if (szAppName && pulSize && *pulSize >= 5) {
        memcpy(szAppName, "APP\0", 5);
        *pulSize += 1000;
        return SAR_OK;
    }
#endif
    return put_list("APP\0", 5, szAppName, pulSize);
}

EXPORT ULONG DEVAPI SKF_OpenApplication(DEVHANDLE hDev, LPSTR szAppName, HAPPLICATION *ph) {
    if (!szAppName || !ph || strcmp((char *)szAppName, "APP") != 0)
        return SAR_APPLICATION_NOT_EXISTS;
    if (hDev == &devs[0]) *ph = &apps[0];
    else if (hDev == &devs[1]) *ph = &apps[1];
    else return SAR_INVALIDHANDLEERR;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_CloseApplication(HAPPLICATION h) { (void)h; return SAR_OK; }

#ifndef OMIT_REQUIRED
EXPORT ULONG DEVAPI SKF_VerifyPIN(HAPPLICATION h, ULONG type, LPSTR pin, ULONG *retry) {
    App *a = (App *)h;
    if (!a || !pin || !retry) return SAR_INVALIDPARAMERR;
    if (type != 1) return SAR_USER_TYPE_INVALID;
    if (a->retries == 0) { *retry = 0; return SAR_PIN_LOCKED; }
    if (strcmp((char *)pin, "123456") != 0) {
        a->retries--;
        *retry = (ULONG)a->retries;
        return a->retries == 0 ? SAR_PIN_LOCKED : SAR_PIN_INCORRECT;
    }
    a->retries = 6;
    a->user = 1;
    *retry = 6;
    return SAR_OK;
}
#endif

/* The vendor's BOOL is a 64-bit long: 8 bytes are written. */
EXPORT ULONG DEVAPI SKF_GetPINInfo(HAPPLICATION h, ULONG type, ULONG *max, ULONG *remain,
                                   BOOL *pbDefault) {
    App *a = (App *)h;
    long long def = (type == 1) ? 1 : 0;
    if (!a || !max || !remain || !pbDefault) return SAR_INVALIDPARAMERR;
    *max = 6;
    *remain = type == 1 ? (ULONG)a->retries : 6;
    memcpy(pbDefault, &def, sizeof def);
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_ClearSecureState(HAPPLICATION h) {
    if (h) ((App *)h)->user = 0;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_EnumContainer(HAPPLICATION h, LPSTR list, ULONG *pulSize) {
    App *a = (App *)h;
    if (a == &apps[1]) return put_list("rsa\0", 5, list, pulSize);
    if (sm2_container) return put_list("c1\0", 4, list, pulSize);
    return put_list("", 1, list, pulSize);
}

EXPORT ULONG DEVAPI SKF_CreateContainer(HAPPLICATION h, LPSTR name, HCONTAINER *ph) {
    if (h != &apps[0] || !name || !ph || strcmp((char *)name, "c1") != 0) return SAR_FAIL;
    if (!apps[0].user) return SAR_USER_NOT_LOGGED_IN;
    sm2_container = 1;
    *ph = &conts[0];
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_OpenContainer(HAPPLICATION h, LPSTR name, HCONTAINER *ph) {
    if (!name || !ph) return SAR_INVALIDPARAMERR;
    if (h == &apps[0] && sm2_container && strcmp((char *)name, "c1") == 0) *ph = &conts[0];
    else if (h == &apps[1] && strcmp((char *)name, "rsa") == 0) *ph = &conts[1];
    else return SAR_FAIL;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_CloseContainer(HCONTAINER h) { (void)h; return SAR_OK; }

EXPORT ULONG DEVAPI SKF_GetContainerType(HCONTAINER h, ULONG *t) {
    Cont *c = (Cont *)h;
    *t = c->rsa ? 1 : (sm2_key ? 2 : 0);
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_GenECCKeyPair(HCONTAINER h, ULONG alg, ECCPUBLICKEYBLOB *pBlob) {
    Cont *c = (Cont *)h;
    if (c->rsa) return SAR_NOTSUPPORTYETERR;
    if (!c->app->user) return SAR_USER_NOT_LOGGED_IN;
#ifdef CAPS_2012
    if (alg != 0x00020100) return SAR_INVALIDPARAMERR; /* legacy SGD_SM2_1 only */
    sm2_key = 1;
#else
    /* The legacy reading of 0x00020200 is SGD_SM2_2: a key-exchange key, which then
       refuses to sign. A bridge that guessed the wrong ID set would fail there. */
    if (alg == 0x00020200) sm2_key = 2;
    else if (alg == 0x00020100) sm2_key = 1;
    else return SAR_INVALIDPARAMERR;
#endif
    memset(pBlob, 0, sizeof *pBlob);
#ifdef LYING_LENGTHS
    pBlob->BitLen = 4096; /* out of range for an ECC key */
#else
    pBlob->BitLen = 256;
#endif
    memcpy(pBlob->XCoordinate + 32, GX, 32);
    memcpy(pBlob->YCoordinate + 32, GY, 32);
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_ExportPublicKey(HCONTAINER h, BOOL bSign, BYTE *out, ULONG *len) {
    Cont *c = (Cont *)h;
    if (!bSign) return SAR_KEYNOTFOUNTERR;
    if (c->rsa) {
        RSAPUBLICKEYBLOB b;
        memset(&b, 0, sizeof b);
        b.AlgID = 0x00010000;
        b.BitLen = 2048;
        memset(b.Modulus, 0xC5, sizeof b.Modulus);
        b.PublicExponent[1] = 1;
        b.PublicExponent[3] = 1;
        if (!out) { *len = sizeof b; return SAR_OK; }
        if (*len < sizeof b) { *len = sizeof b; return SAR_BUFFER_TOO_SMALL; }
        memcpy(out, &b, sizeof b);
        *len = sizeof b;
        return SAR_OK;
    }
    if (!sm2_key) return SAR_KEYNOTFOUNTERR;
    {
        ECCPUBLICKEYBLOB b;
        memset(&b, 0, sizeof b);
        b.BitLen = 256;
        memcpy(b.XCoordinate + 32, GX, 32);
        memcpy(b.YCoordinate + 32, GY, 32);
        if (!out) { *len = sizeof b; return SAR_OK; }
        if (*len < sizeof b) { *len = sizeof b; return SAR_BUFFER_TOO_SMALL; }
        memcpy(out, &b, sizeof b);
        *len = sizeof b;
    }
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_ExportCertificate(HCONTAINER h, BOOL s, BYTE *out, ULONG *len) {
    (void)h; (void)s; (void)out; (void)len;
    return SAR_CERTNOTFOUNTERR;
}

EXPORT ULONG DEVAPI SKF_ECCSignData(HCONTAINER h, BYTE *dgst, ULONG len, ECCSIGNATUREBLOB *sig) {
    Cont *c = (Cont *)h;
    if (c->rsa || !sm2_key) return SAR_KEYNOTFOUNTERR;
    if (sm2_key == 2) return SAR_KEYUSAGEERR;
    if (!c->app->user) return SAR_USER_NOT_LOGGED_IN;
    if (len != 32) return SAR_INDATALENERR;
    memset(sig, 0, sizeof *sig);
    memcpy(sig->r + 32, dgst, 32);
    memcpy(sig->s + 32, dgst, 32);
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_RSASignData(HCONTAINER h, BYTE *in, ULONG inLen, BYTE *sig, ULONG *sigLen) {
    Cont *c = (Cont *)h;
    if (!c->rsa) return SAR_KEYNOTFOUNTERR;
    if (!c->app->user) return SAR_USER_NOT_LOGGED_IN;
    if (inLen > 256 - 11) return SAR_INDATALENERR;
    if (!sig) { *sigLen = 256; return SAR_OK; }
    if (*sigLen < 256) { *sigLen = 256; return SAR_BUFFER_TOO_SMALL; }
    memset(sig, 0xAB, 256);
    memcpy(sig + 256 - inLen, in, inLen);
    *sigLen = 256;
    return SAR_OK;
}

EXPORT ULONG DEVAPI SKF_EnumFiles(HAPPLICATION h, LPSTR list, ULONG *pulSize) {
    (void)h;
    return put_list("", 1, list, pulSize);
}
