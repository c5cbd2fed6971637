//! `/admin/v1/*`: operators create brands, affiliates, campaigns and links,
//! and change a brand's privacy settings.
//!
//! Request DTOs live here and are parsed into the catalogue's `New*` types,
//! collecting every field problem into one 422.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use clickstitch_shared::geo::{JurisdictionProfile, LinkGeoRules};
use clickstitch_shared::ip::IpStorage;
use clickstitch_shared::{AffiliateId, BrandId, CampaignId, LinkTemplate, ShortCode};

use crate::catalog::{
    country_set, Affiliate, Brand, BrandChanges, Campaign, Link, Name, NewAffiliate, NewBrand,
    NewCampaign, NewLink,
};
use crate::error::Problem;
use crate::http::auth::{CredentialAdmin, Operator};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;

/// Collects field problems while parsing a DTO.
#[derive(Default)]
struct Fields(Vec<Problem>);

impl Fields {
    fn take<T, E: ToString>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.0.push(Problem::new(field, e.to_string())))
            .ok()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(ApiError::Validation(self.0)),
        }
    }
}

/// `POST /admin/v1/brands` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBrand {
    name: String,
    jurisdiction: CreateJurisdiction,
    #[serde(default)]
    ip_storage: Option<String>,
    #[serde(default)]
    visitor_cookie: Option<bool>,
    #[serde(default)]
    player_link_group: Option<String>,
}

/// `PATCH /admin/v1/brands/{brand_id}` body: the privacy settings to change
/// (absent fields keep their value).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBrand {
    #[serde(default)]
    ip_storage: Option<String>,
    #[serde(default)]
    visitor_cookie: Option<bool>,
}

fn parse_ip_storage(text: &str) -> Result<IpStorage, String> {
    match text {
        "full" => Ok(IpStorage::Full),
        "truncated" => Ok(IpStorage::Truncated),
        other => Err(format!("must be \"full\" or \"truncated\", got {other:?}")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJurisdiction {
    name: String,
    #[serde(default)]
    restricted_countries: Vec<String>,
    #[serde(default)]
    block_unknown_country: Option<bool>,
}

/// Creates a brand.
pub async fn create_brand(
    _op: Operator,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBrand>,
) -> Result<(StatusCode, Json<Brand>), ApiError> {
    let mut f = Fields::default();
    let name = f.take("name", Name::parse(&body.name));
    let jname = f.take("jurisdiction.name", Name::parse(&body.jurisdiction.name));
    let restricted = f.take(
        "jurisdiction.restricted_countries",
        country_set(&body.jurisdiction.restricted_countries),
    );
    let ip_storage = f.take(
        "ip_storage",
        body.ip_storage
            .as_deref()
            .map_or(Ok(IpStorage::Full), parse_ip_storage),
    );
    let link_group = f.take(
        "player_link_group",
        crate::entities::catalog::LinkGroup::parse(
            body.player_link_group.as_deref().unwrap_or_default(),
        ),
    );
    let new = (|| {
        Some(NewBrand {
            name: name?,
            jurisdiction: JurisdictionProfile {
                name: jname?.to_string(),
                restricted_countries: restricted?,
                block_unknown_country: body.jurisdiction.block_unknown_country.unwrap_or(true),
            },
            ip_storage: ip_storage?,
            visitor_cookie: body.visitor_cookie.unwrap_or(true),
            player_link_group: link_group?,
        })
    })();
    let new = f.finish(new)?;
    let brand = state.catalog().create_brand(new).await?;
    Ok((StatusCode::CREATED, Json(brand)))
}

/// Changes a brand's privacy settings (`ip_storage`, `visitor_cookie`).
/// The edge follows within its link cache freshness
/// (`LINK_CACHE_TTL_SECONDS`).
pub async fn update_brand(
    _op: Operator,
    State(state): State<AppState>,
    Path(brand_id): Path<String>,
    ApiJson(body): ApiJson<UpdateBrand>,
) -> Result<Json<Brand>, ApiError> {
    let brand_id = BrandId::parse(&brand_id).map_err(|_| ApiError::NotFound("brand"))?;
    let mut f = Fields::default();
    let ip_storage = match body.ip_storage.as_deref() {
        None => Some(None),
        Some(text) => f.take("ip_storage", parse_ip_storage(text)).map(Some),
    };
    let changes = ip_storage.map(|ip_storage| BrandChanges {
        ip_storage,
        visitor_cookie: body.visitor_cookie,
    });
    let changes = f.finish(changes)?;
    // The brand is the path's resource: unknown is 404, not a field error.
    let brand = match state.catalog().update_brand(brand_id, changes).await {
        Err(crate::catalog::CatalogError::NotFound(_)) => return Err(ApiError::NotFound("brand")),
        other => other?,
    };
    Ok(Json(brand))
}

/// Lists brands.
pub async fn list_brands(_op: Operator, State(state): State<AppState>) -> Json<Vec<Brand>> {
    Json(state.catalog().brands())
}

/// `POST /admin/v1/affiliates` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAffiliate {
    name: String,
    #[serde(default)]
    parent_affiliate_id: Option<String>,
    #[serde(default)]
    traffic_types: Vec<String>,
}

/// Creates an affiliate (a sub-affiliate when a parent is given).
pub async fn create_affiliate(
    _op: Operator,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateAffiliate>,
) -> Result<(StatusCode, Json<Affiliate>), ApiError> {
    let mut f = Fields::default();
    let name = f.take("name", Name::parse(&body.name));
    let parent = match body.parent_affiliate_id.as_deref() {
        None => Some(None),
        Some(p) => f
            .take("parent_affiliate_id", AffiliateId::parse(p))
            .map(Some),
    };
    let traffic_types = f.take(
        "traffic_types",
        body.traffic_types
            .iter()
            .map(|t| crate::attribution::TrafficType::parse(t))
            .collect::<Result<_, _>>(),
    );
    let new = (|| {
        Some(NewAffiliate {
            name: name?,
            parent_id: parent?,
            traffic_types: traffic_types?,
        })
    })();
    let affiliate = state.catalog().create_affiliate(f.finish(new)?).await?;
    Ok((StatusCode::CREATED, Json(affiliate)))
}

/// Lists affiliates.
pub async fn list_affiliates(_op: Operator, State(state): State<AppState>) -> Json<Vec<Affiliate>> {
    Json(state.catalog().affiliates())
}

/// `POST /admin/v1/campaigns` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    brand_id: String,
    name: String,
}

/// Creates a campaign.
pub async fn create_campaign(
    _op: Operator,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let mut f = Fields::default();
    let brand_id = f.take("brand_id", BrandId::parse(&body.brand_id));
    let name = f.take("name", Name::parse(&body.name));
    let new = (|| {
        Some(NewCampaign {
            brand_id: brand_id?,
            name: name?,
        })
    })();
    let campaign = state.catalog().create_campaign(f.finish(new)?).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// Lists campaigns.
pub async fn list_campaigns(_op: Operator, State(state): State<AppState>) -> Json<Vec<Campaign>> {
    Json(state.catalog().campaigns())
}

/// `POST /admin/v1/links` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    brand_id: String,
    affiliate_id: String,
    campaign_id: String,
    destination_template: String,
    #[serde(default)]
    allowed_countries: Vec<String>,
    #[serde(default)]
    blocked_countries: Vec<String>,
}

/// A link as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct LinkResponse {
    #[serde(flatten)]
    link: Link,
}

/// Creates a link with a fresh code.
pub async fn create_link(
    _op: Operator,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateLink>,
) -> Result<(StatusCode, Json<LinkResponse>), ApiError> {
    let mut f = Fields::default();
    let brand_id = f.take("brand_id", BrandId::parse(&body.brand_id));
    let owner_id = f.take("affiliate_id", AffiliateId::parse(&body.affiliate_id));
    let campaign_id = f.take("campaign_id", CampaignId::parse(&body.campaign_id));
    let destination = f.take(
        "destination_template",
        LinkTemplate::parse(&body.destination_template),
    );
    let allowed = f.take("allowed_countries", country_set(&body.allowed_countries));
    let blocked = f.take("blocked_countries", country_set(&body.blocked_countries));
    let new = (|| {
        Some(NewLink {
            brand_id: brand_id?,
            owner_id: owner_id?,
            campaign_id: campaign_id?,
            destination: destination?,
            geo: LinkGeoRules {
                allowed_countries: allowed?,
                blocked_countries: blocked?,
            },
        })
    })();
    let link = state.catalog().create_link(f.finish(new)?).await?;
    Ok((StatusCode::CREATED, Json(LinkResponse { link })))
}

/// Reads one link.
pub async fn get_link(
    _op: Operator,
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<LinkResponse>, ApiError> {
    let code = ShortCode::parse(&code).map_err(|_| ApiError::NotFound("link"))?;
    let link = state
        .catalog()
        .link(&code)
        .ok_or(ApiError::NotFound("link"))?;
    Ok(Json(LinkResponse { link }))
}

/// A newly issued key: the token is shown this once.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    key: crate::keys::ApiKey,
    token: String,
}

async fn issue(
    state: &AppState,
    scope: crate::keys::KeyScope,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    use secrecy::ExposeSecret;
    let (key, token) = state.keys().issue(scope).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            key,
            token: token.expose_secret().to_owned(),
        }),
    ))
}

/// Issues an API key for a brand.
pub async fn issue_brand_key(
    _op: Operator,
    State(state): State<AppState>,
    Path(brand_id): Path<String>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let brand_id = BrandId::parse(&brand_id).map_err(|_| ApiError::NotFound("brand"))?;
    if !state.catalog().brands().iter().any(|b| b.id == brand_id) {
        return Err(ApiError::NotFound("brand"));
    }
    issue(&state, crate::keys::KeyScope::Brand { brand_id }).await
}

/// Issues an API key for an affiliate.
pub async fn issue_affiliate_key(
    _op: Operator,
    State(state): State<AppState>,
    Path(affiliate_id): Path<String>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let affiliate_id =
        AffiliateId::parse(&affiliate_id).map_err(|_| ApiError::NotFound("affiliate"))?;
    if !state
        .catalog()
        .affiliates()
        .iter()
        .any(|a| a.id == affiliate_id)
    {
        return Err(ApiError::NotFound("affiliate"));
    }
    issue(&state, crate::keys::KeyScope::Affiliate { affiliate_id }).await
}

/// `POST /admin/v1/operators` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    owner: Option<String>,
    role: Option<String>,
}

/// Issues a named operator credential (admins, and the bootstrap token
/// for the first admin); the token is shown once.
pub async fn issue_operator_key(
    _admin: CredentialAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewOperator>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let mut problems = Vec::new();
    let owner = crate::keys::Owner::parse(body.owner.as_deref().unwrap_or_default());
    if owner.is_none() {
        problems.push(Problem::new(
            "owner",
            format!(
                "is required: who holds the credential (1..={} printable bytes)",
                crate::keys::MAX_OWNER_BYTES
            ),
        ));
    }
    let role = crate::keys::Role::parse(body.role.as_deref().unwrap_or_default());
    if role.is_none() {
        problems.push(Problem::new(
            "role",
            "must be admin, finance, risk_reviewer or read_only",
        ));
    }
    let (Some(owner), Some(role)) = (owner, role) else {
        return Err(ApiError::Validation(problems));
    };
    issue(&state, crate::keys::KeyScope::Operator { role, owner }).await
}

/// `GET /admin/v1/operators`: every named operator credential (no tokens).
pub async fn list_operator_keys(
    _admin: CredentialAdmin,
    State(state): State<AppState>,
) -> Json<Vec<crate::keys::ApiKey>> {
    Json(state.keys().operator_keys())
}

/// Revokes a key (admins; the bootstrap token too, to recover from a lost
/// admin credential).
pub async fn revoke_key(
    _op: CredentialAdmin,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.keys().revoke(&key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("api key"))
    }
}

/// `POST /admin/v1/brands/{id}/postback-secret/rotate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatePostback {
    /// Hours the previous secret stays valid (default 24).
    overlap_hours: Option<u32>,
}

/// Starts the brand's next postback secret; the previous one stays valid
/// for `overlap_hours` (0..=720, default 24).
pub async fn rotate_postback_secret(
    _op: Operator,
    State(state): State<AppState>,
    Path(brand_id): Path<String>,
    ApiJson(body): ApiJson<RotatePostback>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use secrecy::ExposeSecret;
    let brand_id = BrandId::parse(&brand_id).map_err(|_| ApiError::NotFound("brand"))?;
    if !state.catalog().brands().iter().any(|b| b.id == brand_id) {
        return Err(ApiError::NotFound("brand"));
    }
    let overlap = body.overlap_hours.unwrap_or(24);
    if overlap > crate::keys::MAX_POSTBACK_OVERLAP_HOURS {
        return Err(ApiError::Validation(vec![Problem::new(
            "overlap_hours",
            format!(
                "must be 0..={} hours",
                crate::keys::MAX_POSTBACK_OVERLAP_HOURS
            ),
        )]));
    }
    let (rotation, secret) = state
        .keys()
        .rotate_postback(brand_id, overlap)
        .await?
        .ok_or(ApiError::Conflict(
            "postbacks are disabled: set auth.postback_key".into(),
        ))?;
    Ok(Json(serde_json::json!({
        "brand_id": brand_id,
        "postback_secret": secret.expose_secret(),
        "generation": rotation.generation,
        "previous_valid_until_ms": rotation.previous_valid_until_ms,
    })))
}

/// The brand's postback secret (derived; see `keys`).
pub async fn postback_secret(
    _op: Operator,
    State(state): State<AppState>,
    Path(brand_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use secrecy::ExposeSecret;
    let brand_id = BrandId::parse(&brand_id).map_err(|_| ApiError::NotFound("brand"))?;
    if !state.catalog().brands().iter().any(|b| b.id == brand_id) {
        return Err(ApiError::NotFound("brand"));
    }
    let secret = state
        .keys()
        .postback_secret(brand_id)
        .ok_or(ApiError::Conflict(
            "postbacks are disabled: set auth.postback_key".into(),
        ))?;
    Ok(Json(
        serde_json::json!({"brand_id": brand_id, "postback_secret": secret.expose_secret()}),
    ))
}

/// The catalogue, credential and postback-secret routes (under `/admin/v1`).
pub fn router() -> axum::Router<AppState> {
    use axum::routing::{delete, get, patch, post};
    axum::Router::new()
        .route("/brands", post(create_brand).get(list_brands))
        .route("/brands/{brand_id}", patch(update_brand))
        .route("/affiliates", post(create_affiliate).get(list_affiliates))
        .route("/campaigns", post(create_campaign).get(list_campaigns))
        .route("/links", post(create_link))
        .route("/links/{code}", get(get_link))
        .route("/brands/{brand_id}/api-keys", post(issue_brand_key))
        .route("/brands/{brand_id}/postback-secret", get(postback_secret))
        .route(
            "/brands/{brand_id}/postback-secret/rotate",
            post(rotate_postback_secret),
        )
        .route(
            "/affiliates/{affiliate_id}/api-keys",
            post(issue_affiliate_key),
        )
        .route(
            "/operators",
            post(issue_operator_key).get(list_operator_keys),
        )
        .route("/api-keys/{key_id}", delete(revoke_key))
}
