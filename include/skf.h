/*
 * skf.h - GM/T 0016-2012 "Smart token cryptography application interface" (SKF), as
 * implemented by libukey_skf.so.
 *
 * Written for ukey. ULONG and BOOL are 32-bit on every platform; structures are packed to
 * 1 byte; DEVAPI is __stdcall on Windows and empty elsewhere. This header declares what the
 * library exports today; it grows with the library.
 */
#ifndef UKEY_SKF_H
#define UKEY_SKF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DEVAPI __stdcall
#else
#define DEVAPI
#endif

typedef int8_t   INT8;
typedef int16_t  INT16;
typedef int32_t  INT32;
typedef uint8_t  UINT8;
typedef uint16_t UINT16;
typedef uint32_t UINT32;
typedef INT32    BOOL;
typedef UINT8    BYTE;
typedef UINT8    CHAR;
typedef INT16    SHORT;
typedef UINT16   USHORT;
typedef INT32    LONG;
typedef UINT32   ULONG;
typedef UINT32   UINT;
typedef UINT16   WORD;
typedef UINT32   DWORD;
typedef UINT32   FLAGS;
typedef CHAR    *LPSTR;
typedef void    *HANDLE;
typedef HANDLE   DEVHANDLE;
typedef HANDLE   HAPPLICATION;
typedef HANDLE   HCONTAINER;

#ifndef TRUE
#define TRUE  1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* Error codes (GM/T 0016-2012 Annex A) */
#define SAR_OK                           0x00000000
#define SAR_FAIL                         0x0A000001
#define SAR_UNKNOWNERR                   0x0A000002
#define SAR_NOTSUPPORTYETERR             0x0A000003
#define SAR_FILEERR                      0x0A000004
#define SAR_INVALIDHANDLEERR             0x0A000005
#define SAR_INVALIDPARAMERR              0x0A000006
#define SAR_READFILEERR                  0x0A000007
#define SAR_WRITEFILEERR                 0x0A000008
#define SAR_NAMELENERR                   0x0A000009
#define SAR_KEYUSAGEERR                  0x0A00000A
#define SAR_MODULUSLENERR                0x0A00000B
#define SAR_NOTINITIALIZEERR             0x0A00000C
#define SAR_OBJERR                       0x0A00000D
#define SAR_MEMORYERR                    0x0A00000E
#define SAR_TIMEOUTERR                   0x0A00000F
#define SAR_INDATALENERR                 0x0A000010
#define SAR_INDATAERR                    0x0A000011
#define SAR_GENRANDERR                   0x0A000012
#define SAR_HASHOBJERR                   0x0A000013
#define SAR_HASHERR                      0x0A000014
#define SAR_GENRSAKEYERR                 0x0A000015
#define SAR_RSAMODULUSLENERR             0x0A000016
#define SAR_CSPIMPRTPUBKEYERR            0x0A000017
#define SAR_RSAENCERR                    0x0A000018
#define SAR_RSADECERR                    0x0A000019
#define SAR_HASHNOTEQUALERR              0x0A00001A
#define SAR_KEYNOTFOUNTERR               0x0A00001B
#define SAR_CERTNOTFOUNTERR              0x0A00001C
#define SAR_NOTEXPORTERR                 0x0A00001D
#define SAR_DECRYPTPADERR                0x0A00001E
#define SAR_MACLENERR                    0x0A00001F
#define SAR_BUFFER_TOO_SMALL             0x0A000020
#define SAR_KEYINFOTYPEERR               0x0A000021
#define SAR_NOT_EVENTERR                 0x0A000022
#define SAR_DEVICE_REMOVED               0x0A000023
#define SAR_PIN_INCORRECT                0x0A000024
#define SAR_PIN_LOCKED                   0x0A000025
#define SAR_PIN_INVALID                  0x0A000026
#define SAR_PIN_LEN_RANGE                0x0A000027
#define SAR_USER_ALREADY_LOGGED_IN       0x0A000028
#define SAR_USER_PIN_NOT_INITIALIZED     0x0A000029
#define SAR_USER_TYPE_INVALID            0x0A00002A
#define SAR_APPLICATION_NAME_INVALID     0x0A00002B
#define SAR_APPLICATION_EXISTS           0x0A00002C
#define SAR_USER_NOT_LOGGED_IN           0x0A00002D
#define SAR_APPLICATION_NOT_EXISTS       0x0A00002E
#define SAR_FILE_ALREADY_EXIST           0x0A00002F
#define SAR_NO_ROOM                      0x0A000030
#define SAR_FILE_NOT_EXIST               0x0A000031
#define SAR_REACH_MAX_CONTAINER_COUNT    0x0A000032

/* 7.1.2 Enumerate devices: a NUL-separated list ending with a double NUL. With
 * szNameList == NULL, *pulSize receives the required size. */
ULONG DEVAPI SKF_EnumDev(BOOL bPresent, LPSTR szNameList, ULONG *pulSize);

#ifdef __cplusplus
}
#endif

#endif /* UKEY_SKF_H */
