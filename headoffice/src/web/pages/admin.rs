//! Users and the audit log (admins).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::*;

fn require_admin(ctx: &Ctx) -> Result<(), Fail> {
    if ctx.role >= Role::Admin { Ok(()) } else { Err(fail(StatusCode::FORBIDDEN, "only an admin may manage users")) }
}

pub async fn users(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Result<Response, Fail> {
    require_admin(&ctx)?;
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let list = app.store.users().await?;
    let body = html! {
        h1 { (l.t("Users", "用户")) }
        table.users {
            thead { tr { th { (l.t("User", "用户")) } th { (l.t("Role", "角色")) } th { (l.t("State", "状态")) } th { (l.t("Created", "创建")) } th { (l.t("Change", "修改")) } } }
            tbody { @for u in &list {
                tr.disabled[u.disabled] {
                    td { (u.name) } td { (role_name(l, u.role)) }
                    td { @if u.disabled { (l.t("disabled", "已停用")) } @else { (l.t("active", "启用")) } }
                    td { (c.show(u.created_at)) }
                    td {
                        form.inline method="post" action="/admin/users/update" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            input type="hidden" name="name" value=(u.name);
                            select name="role" { @for r in Role::ALL { option value=(r.as_str()) selected[r == u.role] { (role_name(l, r)) } } }
                            button name="action" value="role" { (l.t("Set role", "设置角色")) }
                            @if u.disabled { button name="action" value="enable" { (l.t("Enable", "启用")) } }
                            @else { button name="action" value="disable" { (l.t("Disable", "停用")) } }
                            input type="password" name="password" autocomplete="new-password" placeholder=(l.t("new password", "新密码"));
                            button name="action" value="password" { (l.t("Set password", "重设密码")) }
                        }
                    }
                }
            } }
        }
        h2 { (l.t("Add a user", "新增用户")) }
        form.adduser method="post" action="/admin/users" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            label { (l.t("User name", "用户名")) " " input name="name" required maxlength="64"; }
            label { (l.t("Password", "密码")) " " input type="password" name="password" autocomplete="new-password" required minlength=(auth::MIN_PASSWORD); }
            label { (l.t("Role", "角色")) " " select name="role" { @for r in Role::ALL { option value=(r.as_str()) { (role_name(l, r)) } } } }
            button type="submit" { (l.t("Add", "新增")) }
        }
    };
    Ok(page(&app, &ctx, l.t("Users", "用户"), "users", None, body))
}

/// A user name: 1–64 characters, no whitespace or control characters.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a user name has 1 to 64 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a user name has no spaces or control characters".into());
    }
    Ok(())
}

async fn hash_blocking(password: String) -> Result<String, Fail> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    action: String,
}

pub async fn user_add(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<UserForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    require_admin(&ctx)?;
    let name = f.name.trim();
    check_user_name(name).map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    let role =
        Role::parse(&f.role).ok_or_else(|| fail(StatusCode::BAD_REQUEST, "role must be viewer, operator or admin"))?;
    let hash = hash_blocking(f.password).await?;
    let now = protocols::time::now();
    if !app.store.create_user(name, &hash, role, now).await? {
        return Err(fail(StatusCode::CONFLICT, format!("a user named {name:?} exists already")));
    }
    app.store.audit(&ctx.user, "user-add", name, role.as_str(), now).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

pub async fn user_update(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<UserForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    require_admin(&ctx)?;
    let now = protocols::time::now();
    let mut change = UserChange::default();
    let detail = match f.action.as_str() {
        "role" => {
            let role = Role::parse(&f.role)
                .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "role must be viewer, operator or admin"))?;
            if f.name == ctx.user && role < Role::Admin {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "you cannot take the admin role from yourself; ask another admin",
                ));
            }
            change.role = Some(role);
            role.as_str().to_string()
        }
        "disable" => {
            if f.name == ctx.user {
                return Err(fail(StatusCode::BAD_REQUEST, "you cannot disable yourself; ask another admin"));
            }
            change.disabled = Some(true);
            String::new()
        }
        "enable" => {
            change.disabled = Some(false);
            String::new()
        }
        "password" => {
            change.password_hash = Some(hash_blocking(f.password).await?);
            String::new()
        }
        a => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("action={a:?}: expected role, disable, enable or password"),
            ));
        }
    };
    if !app.store.update_user(&f.name, &change, now).await? {
        return Err(fail(StatusCode::NOT_FOUND, format!("no user named {:?}", f.name)));
    }
    app.store.audit(&ctx.user, &format!("user-{}", f.action), &f.name, &detail, now).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

pub async fn audit(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Result<Response, Fail> {
    require_admin(&ctx)?;
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let rows = app.store.audit_log(500).await?;
    let body = html! {
        h1 { (l.t("Audit log (latest 500)", "审计日志（最近 500 条）")) }
        table.audit {
            thead { tr { th { (l.t("When", "时间")) } th { (l.t("Who", "操作人")) } th { (l.t("What", "操作")) } th { (l.t("On", "对象")) } th { (l.t("Detail", "详情")) } } }
            tbody { @for a in &rows { tr { td { (c.show(a.at)) } td { (a.actor) } td { (a.action) } td { (a.target) } td { (a.detail) } } } }
        }
    };
    Ok(page(&app, &ctx, l.t("Audit log", "审计日志"), "audit", None, body))
}
