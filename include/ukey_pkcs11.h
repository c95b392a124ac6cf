/*
 * ukey_pkcs11.h - vendor-defined PKCS#11 constants of libukey_pkcs11.so for the Chinese
 * national algorithms. OASIS PKCS#11 defines none; ukey uses the values common to TASS and
 * SANSEC modules (CKK/CKM_VENDOR_DEFINED based). Include after pkcs11.h.
 */
#ifndef UKEY_PKCS11_H
#define UKEY_PKCS11_H

#define CKK_SM2                 0x80000004UL
#define CKK_SM4                 0x80000106UL

#define CKM_SM2_KEY_PAIR_GEN    0x80008001UL
#define CKM_SM2                 0x80008000UL  /* raw SM2 signature over a 32-byte e */
#define CKM_SM3_SM2             0x80008100UL  /* SM3(Z || M) then SM2 sign */
#define CKM_SM2_ENCRYPT         0x80008200UL  /* SM2 encryption, C1C3C2 */
#define CKM_SM3                 0x80000005UL
#define CKM_SM4_KEY_GEN         0x80000107UL
#define CKM_SM4_ECB             0x80000108UL
#define CKM_SM4_CBC             0x80000109UL
#define CKM_SM4_MAC             0x8000010AUL
#define CKM_SM4_MAC_GENERAL     0x8000010BUL

/* CKA_EC_PARAMS of an SM2 key: the OID 1.2.156.10197.1.301 */
#define UKEY_SM2_EC_PARAMS      "\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d"

#endif /* UKEY_PKCS11_H */
