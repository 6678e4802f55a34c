//! Console operators: `/v1/admin/operators`. Added, listed and removed with the admin token
//! (`medgate admin operator …`); the password is hashed here (Argon2id) and never stored,
//! answered, logged or audited.

use medgate_store::OperatorRecord;
use zeroize::Zeroizing;

use super::*;
use crate::console::password;

fn checked_name(name: &str) -> Result<(), ApiError> {
    if names::is_operator_name(name) {
        Ok(())
    } else {
        Err(ApiError::Malformed(
            "an operator's name is 1-64 characters of a-z 0-9 . _ -".into(),
        ))
    }
}

fn listed(operator: &OperatorRecord) -> admin::Operator {
    admin::Operator {
        name: operator.name.clone(),
        role: operator.role,
        created_at: operator.created_at,
    }
}

/// Add an operator who can sign in to the console.
#[utoipa::path(post, path = "/operators", tag = "operators",
    request_body = admin::CreateOperator,
    responses((status = 201, description = "The operator", body = admin::Operator), ApiError))]
pub(super) async fn create_operator(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: admin::CreateOperator =
        super::request(&state, &headers, request, MAX_ADMIN_BODY).await?;
    let given = Zeroizing::new(request.password);
    checked_name(&request.name)?;
    if !admin::OPERATOR_PASSWORD_CHARS.contains(&given.chars().count()) {
        return Err(ApiError::Malformed(
            "a password is 12 to 256 characters".into(),
        ));
    }
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&given))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|_| ApiError::Internal)?;
    let operator = OperatorRecord {
        name: request.name,
        role: request.role,
        password_hash,
        created_at: state.clock.now(),
    };
    let change = change(
        &state,
        "admin.operator.create",
        &operator.name,
        serde_json::json!({ "role": operator.role.as_str() }),
    );
    state
        .store
        .create_operator(&operator, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(StatusCode::CREATED, &listed(&operator)))
}

/// Every operator, by name: never a password or its hash.
#[utoipa::path(get, path = "/operators", tag = "operators",
    responses((status = 200, description = "The operators", body = Vec<admin::Operator>), ApiError))]
pub(super) async fn list_operators(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let operators: Vec<admin::Operator> =
        state.store.operators().await?.iter().map(listed).collect();
    Ok(json(StatusCode::OK, &operators))
}

/// Remove an operator; their sessions end with them.
#[utoipa::path(delete, path = "/operators/{name}", tag = "operators",
    params(("name" = String, Path, pattern = "^[a-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Removed", body = admin::OperatorRemoved), ApiError))]
pub(super) async fn remove_operator(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    checked_name(&name)?;
    let change = change(
        &state,
        "admin.operator.remove",
        &name,
        serde_json::json!({}),
    );
    state.store.remove_operator(&name, &change.entry).await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::OperatorRemoved {
            name,
            removed: true,
        },
    ))
}
