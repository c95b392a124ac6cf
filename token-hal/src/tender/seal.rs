//! Electronic seals (电子印章): a seal image stored in the token's application with its
//! metadata, the way CA clients "write a seal into the device" and read it back.
//!
//! A seal is kept as ordinary application files, so every backend that has files can hold one:
//! - `seal.<n>`: the metadata, a small TOML document (name, image type, size, SM3 digest of the
//!   image, time written, number of parts); readable by anyone, writable by the user;
//! - `seal.<n>.<k>`, k = 0, 1, ...: the image bytes, split into parts of at most
//!   [`SealStore::chunk`] bytes (token files are limited in size: the soft token takes
//!   [`crate::soft::MAX_FILE_SIZE`], cards far less); readable and writable by the user.
//!
//! Writing needs the user PIN. A failed write removes what it had created, so a seal is either
//! all there or not at all; the metadata file is written last. Reading checks the size and the
//! SM3 digest, so the image comes back byte-identical or not at all.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::crypto::hash::{HashAlg, digest};
use crate::error::{Error, Result};
use crate::model::{LoginState, Rights};
use crate::token::Application;

/// Largest seal image accepted, in bytes. Seal images are small pictures (tens of KiB); a
/// larger file is almost certainly the wrong one.
pub const MAX_SEAL_SIZE: usize = 8 * 1024 * 1024;
/// Default size of one image part: what fits in one soft-token file with room to spare, and a
/// size most USB keys with a large file system accept.
pub const DEFAULT_CHUNK: u32 = 1024 * 1024;
/// Longest seal name, in bytes.
pub const MAX_SEAL_NAME: usize = 64;
/// How many seals an application can hold.
pub const MAX_SEALS: u32 = 100;
/// Prefix of the seal files.
const PREFIX: &str = "seal.";
/// Bytes written per `write_file` call (cards take small writes).
const WRITE_PIECE: usize = 64 * 1024;

/// The kind of image, detected from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// Windows bitmap.
    Bmp,
}

impl ImageType {
    /// Detects the type from the file signature; `None` for anything else.
    pub fn detect(image: &[u8]) -> Option<Self> {
        if image.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if image.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if image.starts_with(b"GIF87a") || image.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if image.len() >= 26 && image.starts_with(b"BM") {
            Some(Self::Bmp)
        } else {
            None
        }
    }

    /// "png", "jpeg", "gif" or "bmp".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
        }
    }
}

/// What is stored about a seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    /// Its slot number (the `<n>` of its file names).
    pub slot: u32,
    /// The seal's name (unique in the application).
    pub name: String,
    /// The image type.
    pub image_type: ImageType,
    /// Image size in bytes.
    pub size: u64,
    /// SM3 digest of the image, lowercase hex.
    pub sm3: String,
    /// Unix time it was written.
    pub written_at: u64,
    /// How many parts the image is stored in.
    pub parts: u32,
}

impl SealInfo {
    /// The time written, RFC 3339 UTC (`2026-12-06T15:55:04Z`).
    pub fn written_at_rfc3339(&self) -> String {
        der::DateTime::from_unix_duration(std::time::Duration::from_secs(self.written_at))
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.written_at.to_string())
    }
}

/// The metadata file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    format: u32,
    name: String,
    image_type: ImageType,
    size: u64,
    sm3: String,
    written_at: u64,
    parts: u32,
}

fn meta_name(slot: u32) -> String {
    format!("{PREFIX}{slot}")
}

fn part_name(slot: u32, k: u32) -> String {
    format!("{PREFIX}{slot}.{k}")
}

/// The slot of a metadata file name (`seal.<n>`), if it is one.
fn slot_of(file: &str) -> Option<u32> {
    let n = file.strip_prefix(PREFIX)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok().filter(|&s| s < MAX_SEALS)
}

/// The seals of one application.
pub struct SealStore<'a> {
    app: &'a dyn Application,
    chunk: u32,
}

impl<'a> SealStore<'a> {
    /// The seals of `app`, with image parts of [`DEFAULT_CHUNK`] bytes.
    pub fn new(app: &'a dyn Application) -> Self {
        Self {
            app,
            chunk: DEFAULT_CHUNK,
        }
    }

    /// Uses image parts of at most `chunk` bytes (for tokens with small files).
    pub fn with_chunk(mut self, chunk: u32) -> Result<Self> {
        if chunk == 0 || chunk > crate::soft::MAX_FILE_SIZE {
            return Err(Error::invalid_arg(format!(
                "seal part size must be 1..={} bytes",
                crate::soft::MAX_FILE_SIZE
            )));
        }
        self.chunk = chunk;
        Ok(self)
    }

    /// The part size in use.
    pub fn chunk(&self) -> u32 {
        self.chunk
    }

    /// Every seal, by slot. A metadata file that does not parse is an error naming it.
    pub fn list(&self) -> Result<Vec<SealInfo>> {
        let mut slots: Vec<u32> = self
            .app
            .list_files()?
            .iter()
            .filter_map(|f| slot_of(&f.name))
            .collect();
        slots.sort_unstable();
        slots.into_iter().map(|s| self.info_of(s)).collect()
    }

    /// One seal by name.
    pub fn find(&self, name: &str) -> Result<SealInfo> {
        self.list()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::not_found(format!("seal {name:?}")))
    }

    fn info_of(&self, slot: u32) -> Result<SealInfo> {
        let file = meta_name(slot);
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("seal file {file:?}"),
            detail,
        };
        let fi = self.app.file_info(&file)?;
        let bytes = self.app.read_file(&file, 0, fi.size)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let m: MetaFile = toml::from_str(text).map_err(|e| corrupt(e.message().to_owned()))?;
        if m.format != 1 {
            return Err(corrupt(format!("unknown format {}", m.format)));
        }
        Ok(SealInfo {
            slot,
            name: m.name,
            image_type: m.image_type,
            size: m.size,
            sm3: m.sm3,
            written_at: m.written_at,
            parts: m.parts,
        })
    }

    /// Stores a seal image under `name`. Needs the user logged in. Refuses an empty name or one
    /// longer than [`MAX_SEAL_NAME`] bytes, a name already used, an image that is not PNG,
    /// JPEG, GIF or BMP, and one larger than [`MAX_SEAL_SIZE`]. On any failure nothing is left
    /// behind.
    pub fn write(&self, name: &str, image: &[u8]) -> Result<SealInfo> {
        if name.is_empty() || name.len() > MAX_SEAL_NAME || name.chars().any(char::is_control) {
            return Err(Error::invalid_arg(format!(
                "a seal name is 1..={MAX_SEAL_NAME} bytes without control characters"
            )));
        }
        if image.is_empty() {
            return Err(Error::invalid_data("the seal image is empty"));
        }
        if image.len() > MAX_SEAL_SIZE {
            return Err(Error::invalid_data(format!(
                "the seal image is {} bytes; a seal holds at most {} bytes ({} MiB)",
                image.len(),
                MAX_SEAL_SIZE,
                MAX_SEAL_SIZE / (1024 * 1024)
            )));
        }
        let image_type = ImageType::detect(image).ok_or_else(|| {
            Error::invalid_data("the seal image is not a PNG, JPEG, GIF or BMP file")
        })?;
        // The files are the user's to write and delete: without the user logged in, a file
        // could be created and then neither written nor removed.
        if self.app.login_state() != LoginState::User {
            return Err(Error::NotLoggedIn);
        }
        let existing = self.list()?;
        if existing.iter().any(|s| s.name == name) {
            return Err(Error::already_exists(format!("seal {name:?}")));
        }
        let files: Vec<String> = self.app.list_files()?.into_iter().map(|f| f.name).collect();
        let slot = (0..MAX_SEALS)
            .find(|&s| {
                let meta = meta_name(s);
                let part = format!("{meta}.");
                !files.iter().any(|f| *f == meta || f.starts_with(&part))
            })
            .ok_or(Error::NoSpace)?;

        let chunk = self.chunk as usize;
        let parts = u32::try_from(image.len().div_ceil(chunk))
            .map_err(|_| Error::invalid_data("seal image too large"))?;
        let info = SealInfo {
            slot,
            name: name.to_owned(),
            image_type,
            size: image.len() as u64,
            sm3: hex::encode(digest(HashAlg::Sm3, image)),
            written_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            parts,
        };
        let meta = toml::to_string(&MetaFile {
            format: 1,
            name: info.name.clone(),
            image_type,
            size: info.size,
            sm3: info.sm3.clone(),
            written_at: info.written_at,
            parts,
        })
        .map_err(|e| Error::internal(format!("seal metadata: {e}")))?;

        let mut created: Vec<String> = Vec::new();
        let result = (|| -> Result<()> {
            for (k, piece) in (0u32..).zip(image.chunks(chunk)) {
                let file = part_name(slot, k);
                self.create_and_write(&file, piece, Rights::USER, &mut created)?;
            }
            self.create_and_write(
                &meta_name(slot),
                meta.as_bytes(),
                Rights::ANYONE,
                &mut created,
            )
        })();
        if let Err(e) = result {
            for f in created.iter().rev() {
                let _ = self.app.delete_file(f);
            }
            return Err(e);
        }
        Ok(info)
    }

    fn create_and_write(
        &self,
        file: &str,
        data: &[u8],
        read: Rights,
        created: &mut Vec<String>,
    ) -> Result<()> {
        let size =
            u32::try_from(data.len()).map_err(|_| Error::invalid_data("seal part too large"))?;
        self.app.create_file(file, size, read, Rights::USER)?;
        created.push(file.to_owned());
        let mut offset = 0u32;
        for piece in data.chunks(WRITE_PIECE) {
            self.app.write_file(file, offset, piece)?;
            offset += piece.len() as u32;
        }
        Ok(())
    }

    /// The image of a seal, checked against its stored size and SM3 digest. Needs the user
    /// logged in (the image files are readable by the user only).
    pub fn read(&self, name: &str) -> Result<(SealInfo, Vec<u8>)> {
        let info = self.find(name)?;
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("seal {name:?}"),
            detail,
        };
        let mut image = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        for k in 0..info.parts {
            let file = part_name(info.slot, k);
            let fi = self.app.file_info(&file)?;
            let mut offset = 0u32;
            while offset < fi.size {
                let piece = self.app.read_file(&file, offset, fi.size - offset)?;
                if piece.is_empty() {
                    return Err(corrupt(format!("file {file:?} ends early")));
                }
                offset += piece.len() as u32;
                image.extend_from_slice(&piece);
            }
        }
        if image.len() as u64 != info.size {
            return Err(corrupt(format!(
                "{} bytes stored, {} expected",
                image.len(),
                info.size
            )));
        }
        if hex::encode(digest(HashAlg::Sm3, &image)) != info.sm3 {
            return Err(corrupt("SM3 digest does not match".into()));
        }
        Ok((info, image))
    }

    /// Deletes a seal (metadata first, so a half-deleted seal is never listed). Needs the
    /// user logged in.
    pub fn delete(&self, name: &str) -> Result<SealInfo> {
        let info = self.find(name)?;
        self.app.delete_file(&meta_name(info.slot))?;
        for k in 0..info.parts {
            match self.app.delete_file(&part_name(info.slot, k)) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_image_types_and_slots() {
        assert_eq!(
            ImageType::detect(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageType::Png)
        );
        assert_eq!(
            ImageType::detect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(ImageType::detect(b"GIF89a..."), Some(ImageType::Gif));
        assert_eq!(ImageType::detect(b"hello world"), None);
        assert_eq!(slot_of("seal.0"), Some(0));
        assert_eq!(slot_of("seal.42"), Some(42));
        assert_eq!(slot_of("seal.42.0"), None);
        assert_eq!(slot_of("seal.07"), None);
        assert_eq!(slot_of("seal."), None);
        assert_eq!(slot_of("seal.100"), None);
        assert_eq!(slot_of("other"), None);
        let info = SealInfo {
            slot: 0,
            name: "x".into(),
            image_type: ImageType::Png,
            size: 1,
            sm3: String::new(),
            written_at: 1_796_572_510,
            parts: 1,
        };
        assert_eq!(info.written_at_rfc3339(), "2026-12-06T15:55:10Z");
    }
}
