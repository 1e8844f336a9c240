//! What a server stores round-trips through serde, and refuses what the constructors
//! refuse.
#![cfg(feature = "serde")]

use apns_proto::{DeviceToken, Environment, Topic};
use proptest::prelude::*;

#[test]
fn stored_values_round_trip() {
    let token =
        DeviceToken::new("73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF")
            .unwrap();
    let json = serde_json::to_string(&token).unwrap();
    assert_eq!(
        json, r#""73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF""#,
        "kept as received"
    );
    let back = serde_json::from_str::<DeviceToken>(&json).unwrap();
    assert_eq!(back.as_str(), token.as_str());
    assert!(serde_json::from_str::<DeviceToken>(r#""BBB""#).is_err());

    let topic =
        Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6").unwrap();
    let json = serde_json::to_string(&topic).unwrap();
    assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), topic);
    assert!(serde_json::from_str::<Topic>(r#""a b""#).is_err());

    for environment in [Environment::Production, Environment::Sandbox] {
        let json = serde_json::to_string(&environment).unwrap();
        assert_eq!(
            serde_json::from_str::<Environment>(&json).unwrap(),
            environment
        );
    }
    assert_eq!(
        serde_json::to_string(&Environment::Sandbox).unwrap(),
        r#""sandbox""#
    );
}

proptest! {
    #[test]
    fn device_tokens_round_trip(hex in "([0-9a-fA-F]{2}){8,100}") {
        let token = DeviceToken::new(&hex).unwrap();
        let json = serde_json::to_string(&token).unwrap();
        prop_assert_eq!(serde_json::from_str::<DeviceToken>(&json).unwrap(), token);
    }
}
