//! General-purpose, slot, token, session and login functions (PKCS#11 3.0 §5.4–5.6).

use std::path::Path;
use std::sync::{Arc, Mutex};

use cryptoki_sys::*;
use token_hal::config::Config;
use token_hal::soft::DEFAULT_DEV_AUTH_KEY;
use token_hal::{AppParams, LoginState, Pin, PinInfo, PinType};

use crate::compat::Compat;
use crate::error::{Error, Result};
use crate::mechanism;
use crate::session::{Ops, Session};
use crate::state::{self, Module};

/// Library version reported in `CK_INFO`.
const LIB_VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

/// Copies `s` into a blank-padded fixed field, cutting at a UTF-8 boundary.
pub(crate) fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// `C_Initialize`: `init_string` is the `pReserved` string (`ukey_conf=/path`).
pub(crate) fn initialize(init_string: Option<&str>) -> Result<()> {
    let mut conf_path = None;
    if let Some(s) = init_string {
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("ukey_conf", v)) => conf_path = Some(v.to_owned()),
                _ => return Err(Error(CKR_ARGUMENTS_BAD)),
            }
        }
    }
    let mut config = match &conf_path {
        Some(p) => Config::load_from(Path::new(p)),
        None => Config::load(),
    }
    .map_err(|e| {
        tracing::error!(error = %e, "configuration");
        Error(CKR_GENERAL_ERROR)
    })?;
    let compat = Compat::from_env();
    if config.log.level.is_none() {
        config.log.level = compat.log_level.clone();
    }
    token_hal::logging::init(&config);
    // Power-on self-tests, before any crypto (once per process; a failure is logged and
    // leaves the module in its error state, see ffi/entry.rs).
    let _ = token_hal::crypto::selftest::run();
    let sansec = match config.pkcs11.vendor_values.as_deref() {
        None | Some("tass") => false,
        Some("sansec") => true,
        Some(other) => {
            tracing::error!(
                value = other,
                "[pkcs11] vendor_values must be tass or sansec"
            );
            return Err(Error(CKR_GENERAL_ERROR));
        }
    };
    crate::mechanism::select_vendor_values(sansec);
    crate::ffi::fork::arm();
    crate::ffi::fork::pin_library();
    state::install(config, compat)
}

/// `C_Finalize`.
pub(crate) fn finalize() -> Result<()> {
    let r = state::remove();
    scrub_stack();
    r
}

/// Overwrites the stack below the caller's frame: key schedules, PIN-derived keys and
/// plaintext copies that crypto code left in dead stack frames of this thread (found by
/// tests/secret_hygiene.rs in a core dump). Called by `C_Logout` and `C_Finalize`.
#[inline(never)]
pub(crate) fn scrub_stack() {
    let mut area = [0u8; 16 * 1024];
    zeroize::Zeroize::zeroize(&mut area[..]);
    std::hint::black_box(&area);
}

/// `C_GetInfo`: cryptoki 3.0.
pub(crate) fn info() -> Result<CK_INFO> {
    state::module()?;
    Ok(CK_INFO {
        cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
        manufacturerID: pad("ukey"),
        flags: 0,
        libraryDescription: pad("ukey PKCS#11 module"),
        libraryVersion: LIB_VERSION,
    })
}

/// `C_GetSlotList`. Rescans devices, so tokens made elsewhere appear.
pub(crate) fn slot_list(_token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    let m = state::module()?;
    m.refresh(true)?;
    m.slot_ids()
}

/// `C_GetSlotInfo`.
pub(crate) fn slot_info(id: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    let m = state::module()?;
    let mut flags = CKF_TOKEN_PRESENT;
    if m.compat.removable {
        flags |= CKF_REMOVABLE_DEVICE;
    }
    if m.is_free(id)? {
        return Ok(CK_SLOT_INFO {
            slotDescription: pad("ukey free slot (C_InitToken makes a soft token)"),
            manufacturerID: pad("ukey"),
            flags,
            hardwareVersion: CK_VERSION { major: 0, minor: 1 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
        });
    }
    let t = m.token(id)?;
    let info = &t.dev_info;
    if info.removable {
        flags |= CKF_REMOVABLE_DEVICE;
    }
    if info.hardware {
        flags |= CKF_HW_SLOT;
    }
    Ok(CK_SLOT_INFO {
        slotDescription: pad(&format!("{} {}", info.label, info.serial)),
        manufacturerID: pad(&info.manufacturer),
        flags,
        hardwareVersion: CK_VERSION {
            major: info.hw_version.0,
            minor: info.hw_version.1,
        },
        firmwareVersion: CK_VERSION {
            major: info.fw_version.0,
            minor: info.fw_version.1,
        },
    })
}

fn pin_flags(p: &PinInfo, low: CK_FLAGS, final_try: CK_FLAGS, locked: CK_FLAGS) -> CK_FLAGS {
    if p.remaining == 0 {
        locked
    } else if p.remaining == 1 {
        final_try | low
    } else if p.remaining < p.max_retries {
        low
    } else {
        0
    }
}

/// `C_GetTokenInfo`.
pub(crate) fn token_info(id: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    let m = state::module()?;
    let base = CK_TOKEN_INFO {
        label: pad(""),
        manufacturerID: pad("ukey"),
        model: pad("soft token"),
        serialNumber: pad(""),
        flags: CKF_RNG | CKF_LOGIN_REQUIRED,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: 0,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: 0,
        ulMaxPinLen: token_hal::PIN_MAX_LEN as CK_ULONG,
        ulMinPinLen: token_hal::PIN_MIN_LEN as CK_ULONG,
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: CK_VERSION { major: 0, minor: 1 },
        firmwareVersion: CK_VERSION { major: 0, minor: 1 },
        utcTime: [b' '; 16],
    };
    if m.is_free(id)? {
        return Ok(base);
    }
    let t = m.token(id)?;
    let dev = &t.dev_info;
    let user = t.app.pin_info(PinType::User)?;
    let so = t.app.pin_info(PinType::Admin)?;
    let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED;
    if user.initialized {
        flags |= CKF_USER_PIN_INITIALIZED;
        flags |= pin_flags(
            &user,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        );
    }
    flags |= pin_flags(
        &so,
        CKF_SO_PIN_COUNT_LOW,
        CKF_SO_PIN_FINAL_TRY,
        CKF_SO_PIN_LOCKED,
    );
    let (n, rw) = {
        let inner = m.lock()?;
        let n = inner.sessions_of(id).count();
        let rw = inner.sessions_of(id).filter(|s| s.rw).count();
        (n, rw)
    };
    Ok(CK_TOKEN_INFO {
        label: pad(&t.app_name),
        manufacturerID: pad(&dev.manufacturer),
        model: pad(&dev.model),
        serialNumber: pad(&t.serial),
        flags,
        ulSessionCount: n as CK_ULONG,
        ulRwSessionCount: rw as CK_ULONG,
        ulTotalPublicMemory: dev.total_space as CK_ULONG,
        ulFreePublicMemory: dev.free_space as CK_ULONG,
        ulTotalPrivateMemory: dev.total_space as CK_ULONG,
        ulFreePrivateMemory: dev.free_space as CK_ULONG,
        hardwareVersion: CK_VERSION {
            major: dev.hw_version.0,
            minor: dev.hw_version.1,
        },
        firmwareVersion: CK_VERSION {
            major: dev.fw_version.0,
            minor: dev.fw_version.1,
        },
        ..base
    })
}

/// `C_GetMechanismList`.
pub(crate) fn mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    let m = state::module()?;
    if !m.slot_exists(slot)? {
        return Err(Error(CKR_SLOT_ID_INVALID));
    }
    let card = on_card(&m, slot);
    let vendor = on_vendor_skf(&m, slot);
    Ok(mechanism::TABLE
        .iter()
        .filter(|r| {
            m.compat.allows(r.ty)
                && !(card && card_lacks(r.ty))
                && !(vendor && vendor_skf_flags(r.ty, r.flags).is_none())
        })
        .map(|r| r.ty)
        .collect())
}

/// Whether the session's token is a vendor SKF device that does not offer `ty` for the
/// operation `flag` (`CKF_SIGN`, `CKF_DECRYPT`, ...): its `C_*Init` then answers
/// `CKR_MECHANISM_INVALID`, as the mechanism list says.
pub(crate) fn vendor_skf_lacks(s: &Session, ty: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> bool {
    s.token.dev_info.backend == token_hal::BackendKind::VendorSkf
        && mechanism::row(ty)
            .is_some_and(|r| vendor_skf_flags(ty, r.flags).is_none_or(|f| f & flag == 0))
}

/// Whether the slot's token is a vendor SKF library's device (the bridge).
fn on_vendor_skf(m: &state::Module, slot: CK_SLOT_ID) -> bool {
    m.token(slot)
        .is_ok_and(|t| t.dev_info.backend == token_hal::BackendKind::VendorSkf)
}

/// What a vendor SKF device behind the bridge offers of a mechanism (docs/skf-bridge.md):
/// its private keys are SM2 and RSA-1024/2048 in containers, and GM/T 0016 signs with
/// them (SM2 over e, RSA PKCS#1 v1.5 over a DigestInfo) and decrypts SM2 only; no raw RSA,
/// PSS or OAEP with the private key, no RSA decryption, no EC P-256 key, no key agreement.
/// Operations with public keys and secret keys run on the host and stay. None: not offered.
pub(crate) fn vendor_skf_flags(ty: CK_MECHANISM_TYPE, flags: CK_FLAGS) -> Option<CK_FLAGS> {
    match ty {
        CKM_RSA_X_509
        | CKM_EC_KEY_PAIR_GEN
        | CKM_ECDH1_DERIVE
        | mechanism::vendor::CKM_UKEY_SM2_KEY_EXCHANGE => None,
        CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP => Some(flags & !(CKF_DECRYPT | CKF_UNWRAP)),
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_ECDSA
        | CKM_ECDSA_SHA1
        | CKM_ECDSA_SHA224
        | CKM_ECDSA_SHA256
        | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => Some(flags & !CKF_SIGN),
        _ => Some(flags),
    }
}

/// Whether the slot's token keeps its keys on a device (a card or a bridged library).
fn on_card(m: &state::Module, slot: CK_SLOT_ID) -> bool {
    m.token(slot)
        .is_ok_and(|t| t.dev_info.backend != token_hal::BackendKind::Soft)
}

/// Mechanisms a device token does not offer: its keys are SM2, ECDSA P-256 and RSA
/// (docs/apdu.md §1), so no Edwards or Montgomery keys.
pub(crate) fn card_lacks(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(
        ty,
        CKM_EDDSA | CKM_EC_EDWARDS_KEY_PAIR_GEN | CKM_EC_MONTGOMERY_KEY_PAIR_GEN
    )
}

/// `C_GetMechanismInfo`.
pub(crate) fn mechanism_info(slot: CK_SLOT_ID, ty: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    let m = state::module()?;
    if !m.slot_exists(slot)? {
        return Err(Error(CKR_SLOT_ID_INVALID));
    }
    let r = mechanism::row(ty)
        .filter(|_| m.compat.allows(ty) && !(on_card(&m, slot) && card_lacks(ty)))
        .ok_or(Error(CKR_MECHANISM_INVALID))?;
    let (mut max, mut flags) = (r.max, r.flags);
    if on_vendor_skf(&m, slot) {
        flags = vendor_skf_flags(ty, flags).ok_or(Error(CKR_MECHANISM_INVALID))?;
        if ty == CKM_RSA_PKCS_KEY_PAIR_GEN {
            max = max.min(2048);
        }
    }
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: r.min,
        ulMaxKeySize: max,
        flags,
    })
}

/// The parameters of an application `C_InitToken` makes: the SO PIN as admin PIN, the
/// user PIN left for `C_InitPIN`, the configured retry limit.
fn new_token_params(m: &state::Module, so_pin: Pin) -> AppParams {
    let mut params = AppParams::new(so_pin, None);
    if let Some(r) = m.config.soft.pin_retries {
        params.admin_retries = r;
        params.user_retries = r;
    }
    params
}

/// The stable slot ID of application `name` on the device with serial `device_serial`.
fn natural_slot(device_serial: &str, name: &str) -> CK_SLOT_ID {
    let serial = token_hal::slot::token_serial(device_serial, name);
    CK_SLOT_ID::from(token_hal::slot::slot_id(&serial))
}

fn label_of(label: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(label).map_err(|_| Error(CKR_ARGUMENTS_BAD))?;
    let s = s.trim_end_matches([' ', '\0']);
    Ok(if s.is_empty() {
        "token".to_owned()
    } else {
        s.to_owned()
    })
}

/// `C_InitToken`: on the free slot, a new soft device and application (the SO PIN as
/// admin PIN, no user PIN); on a token, with the right SO PIN, a wipe (and a rename when
/// the label changes).
pub(crate) fn init_token(slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8]) -> Result<()> {
    let m = state::module()?;
    let _g = m.init_lock.lock().map_err(|_| Error::GENERAL)?;
    let pin = Pin::new(so_pin);
    pin.check_policy().map_err(|_| Error(CKR_PIN_LEN_RANGE))?;
    let name = label_of(label)?;
    if m.is_free(slot)? {
        let dev = m.registry.create_soft_device(&name)?;
        dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)?;
        let params = new_token_params(&m, pin);
        let natural = natural_slot(&dev.info()?.serial, &name);
        {
            let mut inner = m.lock()?;
            let here = inner.free_slot;
            inner.assigned.insert(natural, here);
            inner.free_slot = 0x8000_0000 + inner.assigned.len() as CK_SLOT_ID;
        }
        dev.create_app(&name, &params)?;
        m.refresh_locked(true)?;
        return Ok(());
    }
    let t = m.token(slot)?;
    {
        let inner = m.lock()?;
        if inner.sessions_of(slot).next().is_some() {
            return Err(Error(CKR_SESSION_EXISTS));
        }
    }
    if t.dev_info.backend == token_hal::BackendKind::Apdu {
        // A card: the SO PIN must match, then device authentication with the configured
        // key, and the application is deleted and made again with the SO PIN as its
        // admin PIN (docs/apdu.md).
        t.app.verify_pin(token_hal::PinType::Admin, &pin)?;
        t.app.logout();
        {
            let mut inner = m.lock()?;
            state::drop_token_state(&mut inner, slot);
        }
        t.device
            .authenticate_with_key(&m.config.apdu.dev_auth_key()?)?;
        t.device.delete_app(&t.app_name)?;
        t.device.create_app(&name, &new_token_params(&m, pin))?;
        {
            // The token keeps its slot ID, whatever its new label.
            let natural = natural_slot(&t.dev_info.serial, &name);
            let mut inner = m.lock()?;
            inner.tokens.retain(|x| x.slot_id != slot);
            inner.assigned.insert(natural, slot);
        }
        m.refresh_locked(true)?;
        return Ok(());
    }
    t.app.wipe(&pin)?;
    t.app.logout();
    {
        let mut inner = m.lock()?;
        state::drop_token_state(&mut inner, slot);
    }
    if name != t.app_name {
        t.device.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)?;
        t.device.delete_app(&t.app_name)?;
        let params = AppParams::new(pin, None);
        t.device.create_app(&name, &params)?;
        m.refresh_locked(true)?;
    }
    Ok(())
}

/// `C_InitPIN` (SO logged in, R/W session).
pub(crate) fn init_pin(h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        if s.token.login() != LoginState::Admin || !s.rw {
            return Err(Error(CKR_USER_NOT_LOGGED_IN));
        }
        let p = Pin::new(pin);
        p.check_policy().map_err(|_| Error(CKR_PIN_LEN_RANGE))?;
        s.token.app.init_user_pin(&p)?;
        Ok(())
    })
}

/// `C_SetPIN`: the PIN of whoever is logged in (the user's when nobody is).
pub(crate) fn set_pin(h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        if !s.rw {
            return Err(Error(CKR_SESSION_READ_ONLY));
        }
        let who = match s.token.login() {
            LoginState::Admin => PinType::Admin,
            _ => PinType::User,
        };
        let newp = Pin::new(new);
        newp.check_policy().map_err(|_| Error(CKR_PIN_LEN_RANGE))?;
        s.token.app.change_pin(who, &Pin::new(old), &newp)?;
        Ok(())
    })
}

/// `C_OpenSession`.
pub(crate) fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    let m = state::module()?;
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(Error(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
    }
    let t = m.token(slot)?;
    let rw = flags & CKF_RW_SESSION != 0;
    if !rw && t.login() == LoginState::Admin {
        return Err(Error(CKR_SESSION_READ_WRITE_SO_EXISTS));
    }
    let mut inner = m.lock()?;
    let h = inner.new_session_handle();
    inner.sessions.insert(
        h,
        Arc::new(Session {
            handle: h,
            slot_id: slot,
            token: t,
            rw,
            ops: Mutex::new(Ops::default()),
            checks: Mutex::default(),
            pair_memo: Mutex::default(),
        }),
    );
    Ok(h)
}

fn after_close(m: &Module, slot: CK_SLOT_ID, closed: &[CK_SESSION_HANDLE]) -> Result<()> {
    let mut inner = m.lock()?;
    inner.objects.retain(|_, o| match o.loc {
        crate::object::Loc::Session(sh) => !closed.contains(&sh),
        _ => true,
    });
    if inner.sessions_of(slot).next().is_none()
        && let Some(t) = inner.token(slot)
    {
        t.app.logout();
        for o in inner.objects.values() {
            o.forget_key();
        }
    }
    Ok(())
}

/// `C_CloseSession`: its session objects go; the last session of a token logs out.
pub(crate) fn close_session(h: CK_SESSION_HANDLE) -> Result<()> {
    let m = state::module()?;
    let s = m
        .lock()?
        .sessions
        .remove(&h)
        .ok_or(Error(CKR_SESSION_HANDLE_INVALID))?;
    let r = after_close(&m, s.slot_id, &[h]);
    state::sessions_closed();
    r
}

/// `C_CloseAllSessions`.
pub(crate) fn close_all(slot: CK_SLOT_ID) -> Result<()> {
    let m = state::module()?;
    if !m.slot_exists(slot)? {
        return Err(Error(CKR_SLOT_ID_INVALID));
    }
    let closed: Vec<CK_SESSION_HANDLE> = {
        let mut inner = m.lock()?;
        let hs: Vec<_> = inner.sessions_of(slot).map(|s| s.handle).collect();
        for h in &hs {
            inner.sessions.remove(h);
        }
        hs
    };
    let r = after_close(&m, slot, &closed);
    state::sessions_closed();
    r
}

/// `C_GetSessionInfo`.
pub(crate) fn session_info(h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
    state::with_session(h, |_, s| {
        Ok(CK_SESSION_INFO {
            slotID: s.slot_id,
            state: s.state(),
            flags: CKF_SERIAL_SESSION | if s.rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        })
    })
}

/// `C_Login` / `C_LoginUser`.
pub(crate) fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
    state::with_session(h, |m, s| {
        let t = &s.token;
        let cur = t.login();
        let (want, pin_type) = match user {
            CKU_SO => (LoginState::Admin, PinType::Admin),
            CKU_USER => (LoginState::User, PinType::User),
            CKU_CONTEXT_SPECIFIC => {
                if cur != LoginState::User {
                    return Err(Error(CKR_USER_NOT_LOGGED_IN));
                }
                t.app.verify_pin(PinType::User, &Pin::new(pin))?;
                return Ok(());
            }
            _ => return Err(Error(CKR_USER_TYPE_INVALID)),
        };
        if cur == want {
            return Err(Error(CKR_USER_ALREADY_LOGGED_IN));
        }
        if cur != LoginState::None {
            return Err(Error(CKR_USER_ANOTHER_ALREADY_LOGGED_IN));
        }
        if want == LoginState::Admin {
            let inner = m.lock()?;
            if inner.sessions_of(s.slot_id).any(|x| !x.rw) {
                return Err(Error(CKR_SESSION_READ_ONLY_EXISTS));
            }
        }
        if want == LoginState::User && !t.app.pin_info(PinType::User)?.initialized {
            return Err(Error(CKR_USER_PIN_NOT_INITIALIZED));
        }
        t.app.verify_pin(pin_type, &Pin::new(pin))?;
        Ok(())
    })
}

/// `C_Logout`.
pub(crate) fn logout(h: CK_SESSION_HANDLE) -> Result<()> {
    state::with_session(h, |m, s| {
        if s.token.login() == LoginState::None {
            return Err(Error(CKR_USER_NOT_LOGGED_IN));
        }
        s.token.app.logout();
        {
            let inner = m.lock()?;
            for o in inner.objects.values().filter(|o| o.slot == s.slot_id) {
                o.forget_key();
            }
        }
        scrub_stack();
        Ok(())
    })
}

/// `C_SessionCancel`: ends the operations named by `flags`.
pub(crate) fn session_cancel(h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        if flags & (CKF_ENCRYPT | CKF_MESSAGE_ENCRYPT) != 0 {
            ops.encrypt = None;
            ops.msg_enc = None;
        }
        if flags & (CKF_DECRYPT | CKF_MESSAGE_DECRYPT) != 0 {
            ops.decrypt = None;
            ops.msg_dec = None;
        }
        if flags & CKF_DIGEST != 0 {
            ops.digest = None;
        }
        if flags & (CKF_SIGN | CKF_MESSAGE_SIGN) != 0 {
            ops.sign = None;
        }
        if flags & CKF_MESSAGE_SIGN != 0 {
            ops.msg_sign = None;
        }
        if flags & (CKF_VERIFY | CKF_MESSAGE_VERIFY) != 0 {
            ops.verify = None;
        }
        if flags & CKF_MESSAGE_VERIFY != 0 {
            ops.msg_verify = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            ops.find = None;
        }
        ops.pending = None;
        Ok(())
    })
}

/// `C_WaitForSlotEvent`.
pub(crate) fn wait_for_slot_event(flags: CK_FLAGS) -> Result<CK_SLOT_ID> {
    let m = state::module()?;
    m.wait_event(flags & CKF_DONT_BLOCK == 0)
}

/// `C_GenerateRandom`.
pub(crate) fn random(h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
    let m = state::module()?;
    m.session(h)?;
    token_hal::crypto::rng::fill(out)?;
    Ok(())
}

/// `C_SeedRandom`: accepted; the operating system's generator, which every random value
/// comes from, is not reseeded by callers.
pub(crate) fn seed(h: CK_SESSION_HANDLE) -> Result<()> {
    let m = state::module()?;
    m.session(h)?;
    Ok(())
}
