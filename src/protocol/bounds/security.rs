//! Request schemas: DescribeAcls, CreateAcls, DeleteAcls, CreateDelegationToken, RenewDelegationToken, ExpireDelegationToken, DescribeDelegationToken, DescribeClientQuotas, AlterClientQuotas, DescribeUserScramCredentials, AlterUserScramCredentials.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &DESCRIBE_ACLS,
    &CREATE_ACLS,
    &DELETE_ACLS,
    &CREATE_DELEGATION_TOKEN,
    &RENEW_DELEGATION_TOKEN,
    &EXPIRE_DELEGATION_TOKEN,
    &DESCRIBE_DELEGATION_TOKEN,
    &DESCRIBE_CLIENT_QUOTAS,
    &ALTER_CLIENT_QUOTAS,
    &DESCRIBE_USER_SCRAM_CREDENTIALS,
    &ALTER_USER_SCRAM_CREDENTIALS,
];

/// `DescribeAclsRequest` (api key 29), versions 1-3, flexible from v2.
pub(crate) const DESCRIBE_ACLS: Schema = Schema {
    name: "DescribeAcls",
    api_key: 29,
    versions: V(1, 3),
    flexible: V(2, 3),
    fields: &[
        Field::new("resource_type_filter", Int8, V(1, 3)),
        Field::new("resource_name_filter", String, V(1, 3)).nullable(V(1, 3)),
        Field::new("pattern_type_filter", Int8, V(1, 3)),
        Field::new("principal_filter", String, V(1, 3)).nullable(V(1, 3)),
        Field::new("host_filter", String, V(1, 3)).nullable(V(1, 3)),
        Field::new("operation", Int8, V(1, 3)),
        Field::new("permission_type", Int8, V(1, 3)),
    ],
};

const ACL_CREATION: &[Field] = &[
    Field::new("resource_type", Int8, V(1, 3)),
    Field::new("resource_name", String, V(1, 3)),
    Field::new("resource_pattern_type", Int8, V(1, 3)),
    Field::new("principal", String, V(1, 3)),
    Field::new("host", String, V(1, 3)),
    Field::new("operation", Int8, V(1, 3)),
    Field::new("permission_type", Int8, V(1, 3)),
];

/// `CreateAclsRequest` (api key 30), versions 1-3, flexible from v2.
pub(crate) const CREATE_ACLS: Schema = Schema {
    name: "CreateAcls",
    api_key: 30,
    versions: V(1, 3),
    flexible: V(2, 3),
    fields: &[Field::new("creations", Array(&Struct(ACL_CREATION)), V(1, 3))],
};

const DELETE_ACLS_FILTER: &[Field] = &[
    Field::new("resource_type_filter", Int8, V(1, 3)),
    Field::new("resource_name_filter", String, V(1, 3)).nullable(V(1, 3)),
    Field::new("pattern_type_filter", Int8, V(1, 3)),
    Field::new("principal_filter", String, V(1, 3)).nullable(V(1, 3)),
    Field::new("host_filter", String, V(1, 3)).nullable(V(1, 3)),
    Field::new("operation", Int8, V(1, 3)),
    Field::new("permission_type", Int8, V(1, 3)),
];

/// `DeleteAclsRequest` (api key 31), versions 1-3, flexible from v2.
pub(crate) const DELETE_ACLS: Schema = Schema {
    name: "DeleteAcls",
    api_key: 31,
    versions: V(1, 3),
    flexible: V(2, 3),
    fields: &[Field::new("filters", Array(&Struct(DELETE_ACLS_FILTER)), V(1, 3))],
};

const CREATABLE_RENEWERS: &[Field] =
    &[Field::new("principal_type", String, V(1, 3)), Field::new("principal_name", String, V(1, 3))];

/// `CreateDelegationTokenRequest` (api key 38), versions 1-3, flexible from v2.
pub(crate) const CREATE_DELEGATION_TOKEN: Schema = Schema {
    name: "CreateDelegationToken",
    api_key: 38,
    versions: V(1, 3),
    flexible: V(2, 3),
    fields: &[
        Field::new("owner_principal_type", String, V(3, 3)).nullable(V(3, 3)),
        Field::new("owner_principal_name", String, V(3, 3)).nullable(V(3, 3)),
        Field::new("renewers", Array(&Struct(CREATABLE_RENEWERS)), V(1, 3)),
        Field::new("max_lifetime_ms", Int64, V(1, 3)),
    ],
};

/// `RenewDelegationTokenRequest` (api key 39), versions 1-2, flexible from v2.
pub(crate) const RENEW_DELEGATION_TOKEN: Schema = Schema {
    name: "RenewDelegationToken",
    api_key: 39,
    versions: V(1, 2),
    flexible: V(2, 2),
    fields: &[Field::new("hmac", Bytes, V(1, 2)), Field::new("renew_period_ms", Int64, V(1, 2))],
};

/// `ExpireDelegationTokenRequest` (api key 40), versions 1-2, flexible from v2.
pub(crate) const EXPIRE_DELEGATION_TOKEN: Schema = Schema {
    name: "ExpireDelegationToken",
    api_key: 40,
    versions: V(1, 2),
    flexible: V(2, 2),
    fields: &[Field::new("hmac", Bytes, V(1, 2)), Field::new("expiry_time_period_ms", Int64, V(1, 2))],
};

const DESCRIBE_DELEGATION_TOKEN_OWNER: &[Field] =
    &[Field::new("principal_type", String, V(1, 3)), Field::new("principal_name", String, V(1, 3))];

/// `DescribeDelegationTokenRequest` (api key 41), versions 1-3, flexible from v2.
pub(crate) const DESCRIBE_DELEGATION_TOKEN: Schema = Schema {
    name: "DescribeDelegationToken",
    api_key: 41,
    versions: V(1, 3),
    flexible: V(2, 3),
    fields: &[Field::new("owners", Array(&Struct(DESCRIBE_DELEGATION_TOKEN_OWNER)), V(1, 3)).nullable(V(1, 3))],
};

const COMPONENT_DATA: &[Field] = &[
    Field::new("entity_type", String, V(0, 1)),
    Field::new("match_type", Int8, V(0, 1)),
    Field::new("_match", String, V(0, 1)).nullable(V(0, 1)),
];

/// `DescribeClientQuotasRequest` (api key 48), versions 0-1, flexible from v1.
pub(crate) const DESCRIBE_CLIENT_QUOTAS: Schema = Schema {
    name: "DescribeClientQuotas",
    api_key: 48,
    versions: V(0, 1),
    flexible: V(1, 1),
    fields: &[Field::new("components", Array(&Struct(COMPONENT_DATA)), V(0, 1)), Field::new("strict", Bool, V(0, 1))],
};

const ENTITY_DATA: &[Field] =
    &[Field::new("entity_type", String, V(0, 1)), Field::new("entity_name", String, V(0, 1)).nullable(V(0, 1))];

const OP_DATA: &[Field] =
    &[Field::new("key", String, V(0, 1)), Field::new("value", Float64, V(0, 1)), Field::new("remove", Bool, V(0, 1))];

const ENTRY_DATA: &[Field] =
    &[Field::new("entity", Array(&Struct(ENTITY_DATA)), V(0, 1)), Field::new("ops", Array(&Struct(OP_DATA)), V(0, 1))];

/// `AlterClientQuotasRequest` (api key 49), versions 0-1, flexible from v1.
pub(crate) const ALTER_CLIENT_QUOTAS: Schema = Schema {
    name: "AlterClientQuotas",
    api_key: 49,
    versions: V(0, 1),
    flexible: V(1, 1),
    fields: &[Field::new("entries", Array(&Struct(ENTRY_DATA)), V(0, 1)), Field::new("validate_only", Bool, V(0, 1))],
};

const USER_NAME: &[Field] = &[Field::new("name", String, V(0, 0))];

/// `DescribeUserScramCredentialsRequest` (api key 50), versions 0-0, flexible from v0.
pub(crate) const DESCRIBE_USER_SCRAM_CREDENTIALS: Schema = Schema {
    name: "DescribeUserScramCredentials",
    api_key: 50,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("users", Array(&Struct(USER_NAME)), V(0, 0)).nullable(V(0, 0))],
};

const SCRAM_CREDENTIAL_DELETION: &[Field] =
    &[Field::new("name", String, V(0, 0)), Field::new("mechanism", Int8, V(0, 0))];

const SCRAM_CREDENTIAL_UPSERTION: &[Field] = &[
    Field::new("name", String, V(0, 0)),
    Field::new("mechanism", Int8, V(0, 0)),
    Field::new("iterations", Int32, V(0, 0)),
    Field::new("salt", Bytes, V(0, 0)),
    Field::new("salted_password", Bytes, V(0, 0)),
];

/// `AlterUserScramCredentialsRequest` (api key 51), versions 0-0, flexible from v0.
pub(crate) const ALTER_USER_SCRAM_CREDENTIALS: Schema = Schema {
    name: "AlterUserScramCredentials",
    api_key: 51,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("deletions", Array(&Struct(SCRAM_CREDENTIAL_DELETION)), V(0, 0)),
        Field::new("upsertions", Array(&Struct(SCRAM_CREDENTIAL_UPSERTION)), V(0, 0)),
    ],
};
