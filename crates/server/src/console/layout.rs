//! The page around every console page: head, navigation, who is signed in. maud escapes every
//! value it is given, so text from the store cannot become markup.

use axum::response::Html;
use http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::SignedIn;

/// The sections in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Overview,
    Installations,
    Apps,
    Versions,
    Keys,
    Audit,
}

/// htmx's settings: nothing evaluated, no script from a response, no inline style added (the
/// Content-Security-Policy would refuse them anyway).
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0}"#;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · medgate" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/htmx-2.0.11.min.js" defer {}
        }
    }
}

/// A page for a signed-in operator.
pub(super) fn page(
    title: &str,
    signed_in: &SignedIn,
    section: Section,
    content: Markup,
) -> Html<String> {
    let link = |href: &str, label: &str, this: Section| {
        html! {
            a href=(href) aria-current=[(section == this).then_some("page")] { (label) }
        }
    };
    document(
        title,
        None,
        html! {
                    header {
                        strong.brand { "medgate" }
                        nav {
                            (link("/console", "Overview", Section::Overview))
                            (link("/console/installations", "Installations", Section::Installations))
                            (link("/console/apps", "Apps", Section::Apps))
                            (link("/console/versions", "Versions", Section::Versions))
                            (link("/console/keys", "Keys", Section::Keys))
                            (link("/console/audit", "Audit", Section::Audit))
                        }
                        form.signout method="post" action="/console/logout" {
                            span.who { (signed_in.name) " · " (signed_in.role.as_str()) }
                            input type="hidden" name="csrf" value=(signed_in.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                    main {
                        h1 { (title) }
                        (content)
                    }
        },
    )
}

/// The sign-in page; `token` is the form's own cookie value.
pub(super) fn login(token: &str, problem: Option<&str>) -> Html<String> {
    document(
        "Sign in",
        Some("login"),
        html! {
                    main {
                        h1 { "medgate console" }
                        @if let Some(problem) = problem {
                            p.problem role="alert" { (problem) }
                        }
                        form method="post" action="/console/login" {
                            input type="hidden" name="login" value=(token);
                            label { "Name" input name="name" autocomplete="username" required; }
                            label {
                                "Password"
                                input type="password" name="password"
                                    autocomplete="current-password" required;
                            }
                            button type="submit" { "Sign in" }
                        }
                    }
        },
    )
}

/// A page that only says what happened (an error).
pub(super) fn message(status: StatusCode, message: &str) -> Html<String> {
    let title = status.canonical_reason().unwrap_or("Error");
    document(
        title,
        None,
        html! {
            main {
                h1 { (title) }
                p.problem { (message) }
                p { a href="/console" { "Back to the console" } }
            }
        },
    )
}

/// A whole page: the head, and `body` (of class `class`).
fn document(title: &str, class: Option<&str>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body class=[class] { (body) }
            }
        }
        .into_string(),
    )
}
