//! Samba AD DC harness (see samba_ad.rs).
