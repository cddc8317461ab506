//! `auth`: verifying users. Password hashes in the formats admins migrate
//! from (argon2id, Dovecot's `{SHA512-CRYPT}` and `{BLF-CRYPT}`).

pub mod password;
