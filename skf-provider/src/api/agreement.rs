//! SM2 key agreement (GM/T 0003.3) on a container key, with caller-held ephemerals.

use token_hal::crypto::sm2::ExchangeRole;
use token_hal::crypto::{DeriveMech, PublicKey};
use token_hal::model::{KeyRef, KeyUsage};
use token_hal::token::Application;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of the agreed session key (an SM4 key).
pub(crate) const KEY_LEN: usize = 16;

/// The container key agreement uses: the encryption key pair, or the signing pair when
/// the container has no encryption pair.
pub(crate) fn agreement_key(app: &dyn Application, container: &str) -> Result<KeyRef> {
    let c = app.container(container).map_err(Error::container)?;
    let usage = match (&c.enc, &c.sign) {
        (Some(_), _) => KeyUsage::Encrypt,
        (None, Some(_)) => KeyUsage::Sign,
        _ => return Err(Error::KEY_NOT_FOUND),
    };
    Ok(KeyRef::active(container, usage))
}

/// One side of the exchange: the agreed key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn agree(
    app: &dyn Application,
    container: &str,
    role: ExchangeRole,
    ephemeral: &Zeroizing<Vec<u8>>,
    own_id: &[u8],
    peer: PublicKey,
    peer_id: &[u8],
    peer_ephemeral: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>> {
    let key = agreement_key(app, container)?;
    let out = app
        .derive(
            &key,
            &DeriveMech::Sm2Exchange {
                role,
                own_id: own_id.to_vec(),
                ephemeral: ephemeral.clone(),
                peer,
                peer_id: peer_id.to_vec(),
                peer_ephemeral,
                klen: KEY_LEN,
            },
        )
        .map_err(Error::key)?;
    Ok(out.secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_hal::crypto::PrivateKey;
    use token_hal::crypto::sm2::DEFAULT_ID;
    use token_hal::model::{AppParams, Pin, PinType};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// The GM/T 0003.5 example: A's and B's static keys and ephemerals give the key
    /// 6C89347354DE2484C60B4AB1FDE4C6E5 through the container path SKF uses.
    #[test]
    fn agreement_matches_the_standard_example() {
        let dir = tempfile::tempdir().unwrap();
        let opts = token_hal::soft::SoftOptions {
            kdf_iterations: 1000,
            busy_timeout: std::time::Duration::from_secs(5),
        };
        let path = token_hal::soft::create_soft_device(dir.path(), "kat", &opts).unwrap();
        let dev = token_hal::soft::open_soft_device_with(&path, &opts).unwrap();
        use token_hal::token::Device;
        dev.authenticate_with_key(b"1234567812345678").unwrap();
        dev.create_app(
            "a",
            &AppParams::new(Pin::from("12345678"), Some(Pin::from("123456"))),
        )
        .unwrap();
        let app = dev.open_app("a").unwrap();
        app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
        let da = PrivateKey::from_sm2_scalar(&h(
            "81EB26E941BB5AF16DF116495F90695272AE2CD63D6C4AE1678418BE48230029",
        ))
        .unwrap();
        let db = PrivateKey::from_sm2_scalar(&h(
            "785129917D45A9EA5437A59356B82338EAADDA6CEB199088F14AE10DEFA229B5",
        ))
        .unwrap();
        app.create_container("A", None).unwrap();
        app.import_key("A", KeyUsage::Encrypt, &da, false).unwrap();
        app.create_container("B", None).unwrap();
        app.import_key("B", KeyUsage::Encrypt, &db, false).unwrap();
        let ra = Zeroizing::new(h(
            "D4DE15474DB74D06491C440D305E012400990F3E390C7E87153C12DB2EA60BB3",
        ));
        let rb = Zeroizing::new(h(
            "7E07124814B309489125EAED101113164EBF0F3458C5BD88335C1F9D596243D6",
        ));
        let ra_pt = h(
            "04 64CED1BDBC99D590049B434D0FD73428CF608A5DB8FE5CE07F15026940BAE40E\
             376629C7AB21E7DB260922499DDB118F07CE8EAAE3E7720AFEF6A5CC062070C0",
        );
        let rb_pt = h(
            "04 ACC27688A6F7B706098BC91FF3AD1BFF7DC2802CDB14CCCCDB0A90471F9BD707\
             2FEDAC0494B2FFC4D6853876C79B8F301C6573AD0AA50F39FC87181E1A1B46FE",
        );
        let ka = agree(
            app.as_ref(),
            "A",
            ExchangeRole::Initiator,
            &ra,
            DEFAULT_ID,
            db.public_key().unwrap(),
            DEFAULT_ID,
            rb_pt,
        )
        .unwrap();
        let kb = agree(
            app.as_ref(),
            "B",
            ExchangeRole::Responder,
            &rb,
            DEFAULT_ID,
            da.public_key().unwrap(),
            DEFAULT_ID,
            ra_pt,
        )
        .unwrap();
        assert_eq!(hex::encode_upper(&*ka), "6C89347354DE2484C60B4AB1FDE4C6E5");
        assert_eq!(*ka, *kb);
    }
}
