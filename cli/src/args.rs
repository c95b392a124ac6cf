//! The command line, as clap derive types. Spellings of the commands listed in the issue
//! are fixed: scripts depend on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use zeroize::Zeroizing;

/// A PIN or password from the command line: zeroized on drop. The argument types have no
/// `Debug`, so secrets cannot be printed by accident.
pub type Secret = Zeroizing<String>;

/// ukey: manage GM/T 0016 and PKCS#11 tokens and run the everyday workflows.
#[derive(Parser)]
#[command(name = "ukey", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Args)]
pub struct Global {
    /// Token (= application) label to work on; chosen automatically when only one exists.
    #[arg(long, global = true, value_name = "LABEL")]
    pub token: Option<String>,
    /// Device serial, when a command works on a device (`ukey device list` shows them).
    #[arg(long, global = true, value_name = "SERIAL")]
    pub device: Option<String>,
    /// Container name; chosen automatically when the token has only one.
    #[arg(long, global = true, value_name = "NAME")]
    pub container: Option<String>,
    /// User PIN (else `UKEY_PIN`, else a prompt on the terminal).
    #[arg(
        long,
        global = true,
        value_name = "PIN",
        env = "UKEY_PIN",
        hide_env_values = true
    )]
    pub pin: Option<Secret>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Devices: soft tokens in the data directory, and keys.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Applications (= PKCS#11 tokens) on a device.
    #[command(subcommand)]
    App(AppCmd),
    /// PIN state, change, unblock, logout and the PIN cache.
    #[command(subcommand)]
    Pin(PinCmd),
    /// Containers: a signing and an encryption key pair with their certificates.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Key pairs: generate, export the public key, import.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Certificates, including the history of renewed ones.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Files stored in an application.
    #[command(subcommand)]
    File(FileCmd),
    /// Sign a file with a container's signing key.
    Sign(SignArgs),
    /// Verify a signature with a public key or a certificate (no token needed).
    Verify(VerifyArgs),
    /// Encrypt a small file to a public key or certificate (SM2, GM/T 0009 DER).
    Encrypt(EncryptArgs),
    /// Decrypt with a container's encryption (or signing) key.
    Decrypt(DecryptArgs),
    /// Bind a token's signing key to a platform account: challenge, respond, verify.
    #[command(subcommand)]
    Bind(crate::bind::BindCmd),
    /// Bid envelopes (GM/T 0010 EnvelopedData, SM2 + SM4): encrypt for recipients,
    /// decrypt with a key on any token present.
    #[command(subcommand)]
    Envelope(crate::envelope::EnvelopeCmd),
    /// Logs: export the log file encrypted for the support desk.
    #[command(subcommand)]
    Log(crate::envelope::LogCmd),
    /// SoftHSM2 drop-in: `ukey softhsm <softhsm2-util flags>` (must come first).
    Softhsm {
        /// softhsm2-util's flags, e.g. `--init-token --free --label L --so-pin P --pin P`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Run the main job end to end on a soft token and time each step.
    Demo(DemoArgs),
    /// The virtual USB key: serves docs/apdu.md to pcscd through vsmartcard's vpcd.
    Sim(crate::sim::SimArgs),
    /// Show where data and configuration come from.
    Config,
    /// Make a PKCS#10 certificate request signed by a container's key inside the token.
    Csr(CsrArgs),
    /// Electronic seals: seal images stored in the token.
    #[command(subcommand)]
    Seal(SealCmd),
    /// The per-user PIN-cache agent (started by `ukey` when the cache is on).
    Agent(AgentArgs),
}

#[derive(Args)]
pub struct CsrArgs {
    /// Subject as an RFC 4514 name, most specific first: "CN=Name,O=Org,C=CN".
    #[arg(long)]
    pub subject: String,
    /// Request for the encryption key pair (default: the signing pair).
    #[arg(long)]
    pub enc: bool,
    /// DER instead of PEM.
    #[arg(long)]
    pub der: bool,
    /// Where to write the request (default: stdout).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum SealCmd {
    /// Store a seal image (PNG, JPEG, GIF or BMP) with its metadata.
    Write {
        /// The image file.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// The seal's name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the seals with their metadata (no PIN needed).
    List,
    /// Read a seal image back.
    Read {
        /// The seal's name.
        name: String,
        /// Where to write the image (default: stdout).
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Delete a seal.
    Delete {
        /// The seal's name.
        name: String,
    },
}

#[derive(Args)]
pub struct AgentArgs {
    /// Exit after the cache has been empty this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_exit: u64,
    /// Seconds between checks that the tokens whose PINs are held are still present.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub poll: u64,
    /// Stop the running agent (it forgets every PIN) instead of starting one.
    #[arg(long)]
    pub stop: bool,
}

#[derive(Subcommand)]
pub enum PinCacheCmd {
    /// Switch the cache on (in the config file), optionally setting the time.
    Enable {
        /// Minutes a PIN is reused: 1, 5, 10, 30 or 60 (default: as configured, else 30).
        #[arg(long, value_parser = ["1", "5", "10", "30", "60"])]
        minutes: Option<String>,
    },
    /// Switch the cache off and stop the agent (every PIN is forgotten).
    Disable,
    /// Whether the cache is on, its time, and whether the agent runs.
    Status,
    /// Forget every cached PIN.
    Clear,
}

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// List devices.
    List,
    /// Show a device (the only one, or `--device SERIAL`).
    Info {
        /// Device serial.
        serial: Option<String>,
    },
    /// Create a new soft device in the data directory.
    Init {
        /// Device label (≤ 32 bytes).
        #[arg(long, default_value = token_hal::config::DEFAULT_SOFT_LABEL)]
        label: String,
    },
    /// Delete a soft device and everything in it.
    Delete {
        /// Device serial.
        serial: Option<String>,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct AuthKey {
    /// Device authentication key as 32 hex digits (default: ASCII "1234567812345678").
    #[arg(long, value_name = "HEX")]
    pub auth_key: Option<String>,
}

#[derive(Subcommand)]
pub enum AppCmd {
    /// List applications of every device.
    List,
    /// Create an application (needs device authentication).
    Create {
        /// Application name (= token label).
        name: String,
        /// Admin (SO) PIN.
        #[arg(long, visible_alias = "so-pin", value_name = "PIN")]
        admin_pin: Option<Secret>,
        /// Retry limit of both PINs (default from the config, else 10).
        #[arg(long, value_name = "N")]
        retries: Option<u32>,
        #[command(flatten)]
        auth: AuthKey,
    },
    /// Delete an application and everything in it (needs device authentication).
    Delete {
        /// Application name.
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        auth: AuthKey,
    },
}

#[derive(Subcommand)]
pub enum PinCmd {
    /// Retry counters and state of both PINs.
    Info,
    /// Change the user PIN (or with `--so` the admin PIN).
    Change {
        /// Change the admin (SO) PIN; the old one comes from `--admin-pin`.
        #[arg(long, visible_alias = "admin")]
        so: bool,
        /// The current admin PIN, with `--so`.
        #[arg(long, visible_alias = "so-pin", value_name = "PIN")]
        admin_pin: Option<Secret>,
        /// The new PIN (else `UKEY_NEW_PIN`, else a prompt).
        #[arg(long, value_name = "PIN", env = "UKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<Secret>,
    },
    /// Unblock the user PIN with the admin PIN and set a new user PIN.
    Unblock {
        /// The admin (SO) PIN.
        #[arg(long, visible_alias = "so-pin", value_name = "PIN")]
        admin_pin: Option<Secret>,
        /// The new user PIN (else `UKEY_NEW_PIN`, else a prompt).
        #[arg(long, value_name = "PIN", env = "UKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<Secret>,
    },
    /// The PIN cache: `enable [--minutes N]`, `disable`, `status`, `clear`.
    #[command(subcommand)]
    Cache(PinCacheCmd),
    /// Log out of the token: its cached PIN is forgotten.
    Logout,
}

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// List containers with their keys.
    List,
    /// Create an empty container.
    Create {
        /// Container name (or `--container`).
        name: Option<String>,
        /// Container id (PKCS#11 CKA_ID) as hex; derived from the name when absent.
        #[arg(long, value_name = "HEX")]
        id: Option<String>,
    },
    /// Delete a container with its keys and certificates.
    Delete {
        /// Container name (or `--container`).
        name: Option<String>,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// Key algorithms of `key gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    Sm2,
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Generate a key pair (and a self-signed certificate for it).
    Gen {
        /// Algorithm.
        #[arg(long, value_enum, default_value = "sm2")]
        alg: AlgArg,
        /// Generate the encryption key pair (default: the signing pair).
        #[arg(long)]
        enc: bool,
        /// Replace an existing pair; an old encryption pair is retired and still decrypts.
        #[arg(long)]
        rekey: bool,
        /// Do not store a self-signed certificate.
        #[arg(long)]
        no_cert: bool,
        /// Subject common name of the self-signed certificate (default: the container name).
        #[arg(long, value_name = "CN")]
        subject: Option<String>,
        /// Validity of the self-signed certificate in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Print the public key (PEM SubjectPublicKeyInfo).
    Pub {
        /// The encryption key pair (default: signing).
        #[arg(long)]
        enc: bool,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Import a private key (PKCS#8 PEM/DER, encrypted or not; SEC1; PKCS#1).
    Import {
        /// Into the encryption slot (default: signing).
        #[arg(long)]
        enc: bool,
        /// Password of an encrypted key file (else `UKEY_KEY_PASSWORD`, else a prompt).
        #[arg(long, env = "UKEY_KEY_PASSWORD", hide_env_values = true)]
        password: Option<Secret>,
        /// Replace an existing pair (an old encryption pair is retired).
        #[arg(long)]
        rekey: bool,
        /// The key file.
        keyfile: PathBuf,
    },
    /// Install a KMC encryption key pair from a GM/T 0016 ENVELOPEDKEYBLOB (binary or
    /// Base64), unwrapped by the container's SM2 signing key; an existing encryption pair is
    /// retired (it still decrypts).
    ImportEnveloped {
        /// The blob file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum CertCmd {
    /// Import a certificate (PEM or DER) for a container's key; a previous one becomes history.
    Import {
        /// For the encryption key (default: detected from the public key, else signing).
        #[arg(long)]
        enc: bool,
        /// The certificate file.
        certfile: PathBuf,
    },
    /// Export the current certificate (PEM).
    Export {
        /// The encryption key's certificate.
        #[arg(long)]
        enc: bool,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// A certificate by its id from `cert list` (history included).
        #[arg(long, value_name = "ID")]
        id: Option<u64>,
    },
    /// List the current certificates; with `--all` also renewed ones (history) and those
    /// of retired keys.
    List {
        /// Include history and retired keys.
        #[arg(long)]
        all: bool,
    },
    /// Show a certificate the way CA clients do.
    Show {
        /// The encryption key's certificate.
        #[arg(long)]
        enc: bool,
        /// A certificate by its id from `cert list`.
        #[arg(long, value_name = "ID")]
        id: Option<u64>,
        /// A certificate file instead of the token.
        file: Option<PathBuf>,
    },
    /// Delete a certificate (the current one of a slot, or one by id).
    Delete {
        /// The encryption key's certificate.
        #[arg(long)]
        enc: bool,
        /// A certificate by its id from `cert list`.
        #[arg(long, value_name = "ID")]
        id: Option<u64>,
    },
}

/// File access rights on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RightsArg {
    Anyone,
    User,
    Admin,
    Never,
}

#[derive(Subcommand)]
pub enum FileCmd {
    /// List files.
    List,
    /// Read a file (to stdout, or `-o FILE`).
    Read {
        /// File name.
        name: String,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a file from INPUT (or stdin); it is created, or replaced when it exists.
    Write {
        /// File name (≤ 32 bytes).
        name: String,
        /// Input file (default: stdin).
        input: Option<PathBuf>,
        /// Who may read it.
        #[arg(long, value_enum, default_value = "anyone")]
        read: RightsArg,
        /// Who may write it.
        #[arg(long, value_enum, default_value = "user")]
        write: RightsArg,
    },
    /// Delete a file.
    Delete {
        /// File name.
        name: String,
    },
}

/// Signature output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SigFormat {
    /// DER SEQUENCE { r, s } (RSA: the signature as is).
    Der,
    /// r‖s, fixed length.
    Raw,
}

/// Hash of ECDSA and RSA signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Args)]
pub struct SignArgs {
    /// SM2 signer ID (default 1234567812345678).
    #[arg(long)]
    pub id: Option<String>,
    /// Signature format.
    #[arg(long, value_enum, default_value = "der")]
    pub format: SigFormat,
    /// Hash for ECDSA and RSA keys (SM2 always uses SM3).
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// The file to sign.
    pub file: PathBuf,
    /// Where to write the signature.
    #[arg(short = 'o', long = "out", value_name = "SIG")]
    pub out: PathBuf,
    #[command(flatten)]
    pub cms: crate::cms::CmsSignFlags,
}

#[derive(Args)]
#[group(id = "key_source", required = true, multiple = false, args = ["public", "cert"])]
pub struct PeerKey {
    /// Public key (PEM SubjectPublicKeyInfo).
    #[arg(long = "pub", value_name = "PEM")]
    pub public: Option<PathBuf>,
    /// Certificate (PEM or DER).
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,
}

/// The key of `verify`: required unless `--cms` (the SignedData carries the certificate).
#[derive(Args)]
#[group(id = "verify_key", required = false, multiple = false, args = ["public", "cert"])]
pub struct VerifyKey {
    /// Public key (PEM SubjectPublicKeyInfo).
    #[arg(long = "pub", value_name = "PEM", required_unless_present_any = ["cert", "cms"])]
    pub public: Option<PathBuf>,
    /// Certificate (PEM or DER).
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,
}

impl VerifyKey {
    /// The same choice as a [`PeerKey`].
    pub fn to_peer(&self) -> PeerKey {
        PeerKey {
            public: self.public.clone(),
            cert: self.cert.clone(),
        }
    }
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub key: VerifyKey,
    /// SM2 signer ID (default 1234567812345678).
    #[arg(long)]
    pub id: Option<String>,
    /// Hash for ECDSA and RSA keys.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// The signed file (with --cms: the SignedData).
    pub file: PathBuf,
    /// The signature (DER or raw r‖s).
    #[arg(required_unless_present = "cms")]
    pub sig: Option<PathBuf>,
    #[command(flatten)]
    pub cms: crate::cms::CmsVerifyFlags,
}

#[derive(Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub key: PeerKey,
    /// The file to encrypt.
    pub file: PathBuf,
    /// Where to write the ciphertext.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct DecryptArgs {
    /// Use the encryption key pair (and its retired predecessors).
    #[arg(long, conflicts_with = "sign")]
    pub enc: bool,
    /// Use the signing key pair.
    #[arg(long)]
    pub sign: bool,
    /// The ciphertext (GM/T 0009 DER or C1C3C2; RSA PKCS#1 v1.5).
    pub file: PathBuf,
    /// Where to write the plaintext.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Token label of the demo token.
    #[arg(long, default_value = "ukey-demo")]
    pub label: String,
    /// Keep the work files in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
}

/// softhsm2-util's command line (`ukey softhsm ...`, or the binary called `softhsm2-util`).
#[derive(Parser)]
#[command(
    name = "softhsm2-util",
    about = "Support tool for PKCS#11 (ukey drop-in)"
)]
#[command(disable_version_flag = true)]
pub struct SofthsmArgs {
    /// Delete the token found with --token or --serial.
    #[arg(long)]
    pub delete_token: bool,
    /// Import a key pair from a PKCS#8 file.
    #[arg(long, value_name = "PATH")]
    pub import: Option<PathBuf>,
    /// Initialize the token at a given slot (--slot, --token, --serial or --free).
    #[arg(long)]
    pub init_token: bool,
    /// Display all the available slots.
    #[arg(long)]
    pub show_slots: bool,
    /// Show version info.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// Use the first free/uninitialized token.
    #[arg(long)]
    pub free: bool,
    /// Supply a PIN if the file is encrypted.
    #[arg(long, value_name = "PIN")]
    pub file_pin: Option<Secret>,
    /// Used to override a warning.
    #[arg(long)]
    pub force: bool,
    /// The ID of the object, hex.
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// The label of the object or the token.
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Accepted for compatibility; ukey always uses its own library.
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// Do not import the public key (accepted; the container keeps its public key).
    #[arg(long)]
    pub no_public_key: bool,
    /// The PIN for the normal user.
    #[arg(long, value_name = "PIN")]
    pub pin: Option<Secret>,
    /// The token with a matching serial number.
    #[arg(long, value_name = "NUMBER")]
    pub serial: Option<String>,
    /// The slot where the token is located.
    #[arg(long, value_name = "NUMBER")]
    pub slot: Option<String>,
    /// The PIN for the Security Officer (SO).
    #[arg(long, value_name = "PIN")]
    pub so_pin: Option<Secret>,
    /// The token with a matching token label.
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,
    /// Import the file as an AES key (not supported by ukey).
    #[arg(long)]
    pub aes: bool,
}
