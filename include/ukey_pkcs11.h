/*
 * ukey_pkcs11.h - vendor-defined PKCS#11 constants of libukey_pkcs11.so for the Chinese
 * national algorithms. OASIS PKCS#11 defines none. ukey uses the TASS HSM values wherever
 * TASS defines one, and a ukey block 0x80554Bxx ("UK") for the rest; that block collides
 * with neither the TASS nor the SANSEC values (0x800000xx, 0x800001xx, 0x80008xxx,
 * 0x80009xxx). Include after pkcs11.h.
 */
#ifndef UKEY_PKCS11_H
#define UKEY_PKCS11_H

/* Key types (TASS) */
#define CKK_SM2                 0x80000004UL
#define CKK_SM4                 0x80000002UL

/* Mechanisms (TASS) */
#define CKM_SM2                 0x80008000UL  /* raw SM2 signature over a 32-byte e; r||s */
#define CKM_SM2_KEY_PAIR_GEN    0x80008001UL
#define CKM_SM3_SM2             0x80008100UL  /* e = SM3(Z || M), Z with the default ID or the
                                                 ID bytes given as pParameter; r||s */
#define CKM_SM2_ENCRYPT         0x80008200UL  /* SM2 encryption, output 04||C1||C3||C2;
                                                 decryption also takes GM/T 0009 DER */
#define CKM_SM3                 0x80000005UL
#define CKM_SM4_KEY_GEN         0x80000107UL
#define CKM_SM4_ECB             0x80000108UL
#define CKM_SM4_CBC             0x80000109UL  /* pParameter: 16-byte IV */
#define CKM_SM4_MAC             0x8000010AUL  /* CBC-MAC, zero IV, zero padding, 16 bytes */
#define CKM_SM4_MAC_GENERAL     0x8000010BUL  /* as CKM_SM4_MAC; pParameter: CK_ULONG length */

/* Mechanisms (ukey block) */
#define CKM_UKEY_SM4_CBC_PAD    0x80554B01UL  /* PKCS#7 padding; pParameter: 16-byte IV */
#define CKM_UKEY_SM4_CTR        0x80554B02UL  /* pParameter: CK_AES_CTR_PARAMS */
#define CKM_UKEY_SM4_GCM        0x80554B03UL  /* pParameter: CK_GCM_PARAMS (32-128-bit tag);
                                                 also the 3.0 message functions with
                                                 CK_GCM_MESSAGE_PARAMS */
#define CKM_UKEY_SM3_HMAC       0x80554B04UL  /* HMAC-SM3 with a generic secret key */
#define CKM_UKEY_SM2_KEY_EXCHANGE 0x80554B05UL /* C_DeriveKey: GB/T 32918.3 key exchange;
                                                 base key = own static SM2 private key,
                                                 CKA_VALUE_LEN = key length, parameter:
                                                 either structure below */

typedef struct CK_UKEY_SM2_EXCHANGE_PARAMS {
    CK_BBOOL         isInitiator;       /* party A (initiator) or B (responder) */
    CK_BYTE_PTR      pOwnId;            /* NULL: the default ID 1234567812345678 */
    CK_ULONG         ulOwnIdLen;
    CK_OBJECT_HANDLE hOwnEphemeral;     /* an SM2 private key made for this exchange */
    CK_BYTE_PTR      pPeerPublic;       /* peer static public key 04||x||y */
    CK_ULONG         ulPeerPublicLen;
    CK_BYTE_PTR      pPeerId;           /* NULL: the default ID */
    CK_ULONG         ulPeerIdLen;
    CK_BYTE_PTR      pPeerEphemeral;    /* peer ephemeral point 04||x||y */
    CK_ULONG         ulPeerEphemeralLen;
} CK_UKEY_SM2_EXCHANGE_PARAMS;

/*
 * The same parameter with the optional key confirmation of GB/T 32918.3 (GM/T 0003.3)
 * §6.1: A sends RA; B answers RB and SB = Hash(0x02||yV||Hash(xV||ZA||ZB||x1||y1||x2||y2));
 * A checks S1 = SB and sends SA (0x03 instead of 0x02); B checks S2 = SA.
 * The module tells the two forms apart by ulParameterLen: sizeof(CK_UKEY_SM2_EXCHANGE_PARAMS)
 * (the form above, no confirmation, as before) or sizeof(CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS).
 * Every value is 32 bytes (SM3). Outputs are written only when C_DeriveKey succeeds.
 *   pConfirmation              out, NULL or >= 32 bytes: this party's value to send:
 *                              SB at the responder (B8), SA at the initiator (A10)
 *   pExpectedPeerConfirmation  out, NULL or >= 32 bytes: what the peer's value must equal:
 *                              S1 at the initiator (A9), S2 at the responder (B10)
 *   pPeerConfirmation          in, NULL or exactly 32 bytes: the peer's SB (initiator) or
 *                              SA (responder); checked (constant time) before any key is
 *                              made; a mismatch fails with CKR_SIGNATURE_INVALID, no key.
 * A responder gets SB and S2 from its C_DeriveKey and later compares S2 with the SA it
 * receives, or repeats the same C_DeriveKey (same ephemeral key, same inputs) with SA in
 * pPeerConfirmation to have the token check it. An output length below 32 or a peer
 * value of another length is CKR_MECHANISM_PARAM_INVALID.
 */
typedef struct CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS {
    CK_UKEY_SM2_EXCHANGE_PARAMS base;
    CK_BYTE_PTR      pConfirmation;
    CK_ULONG         ulConfirmationLen;
    CK_BYTE_PTR      pExpectedPeerConfirmation;
    CK_ULONG         ulExpectedPeerConfirmationLen;
    CK_BYTE_PTR      pPeerConfirmation;
    CK_ULONG         ulPeerConfirmationLen;
} CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS;

/*
 * The SANSEC set, selected with `[pkcs11] vendor_values = "sansec"` in ukey.toml: the
 * values above stay except these, which replace their TASS counterparts:
 *   CKK_SM4 0x80000106, CKM_SM2 (sign on e) 0x80008104, CKM_SM3 0x80009001,
 *   SM4-CTR 0x8000010A (SANSEC's meaning of that value), SM4-MAC 0x80554B06.
 */
#define CKK_SANSEC_SM4          0x80000106UL
#define CKM_SANSEC_SM2_SIGN     0x80008104UL
#define CKM_SANSEC_SM3          0x80009001UL
#define CKM_SANSEC_SM4_CTR      0x8000010AUL
#define CKM_UKEY_SANSEC_SM4_MAC 0x80554B06UL

/* CKA_EC_PARAMS of an SM2 key: the OID 1.2.156.10197.1.301 */
#define UKEY_SM2_EC_PARAMS      "\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d"

#endif /* UKEY_PKCS11_H */
