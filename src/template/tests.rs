//! Engine-level tests: context names, functions, checks, rendering.

use std::sync::Arc;

use super::*;
use crate::directory::{AttrValue, Entry};

const GUID_BYTES: [u8; 16] = [
    0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

fn settings(undefined: Undefined, formats: &[(&str, &str)]) -> EngineSettings {
    EngineSettings {
        undefined,
        formats: formats
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn engine() -> TemplateEngine {
    TemplateEngine::new(settings(
        Undefined::Lenient,
        &[
            (
                "corpEmail",
                "{{ givenName | normalize | lower }}.{{ sn | normalize | lower }}@corp.example",
            ),
            ("display", "{{ sn }}, {{ formats.first }}"),
            ("first", "{{ givenName }}"),
            ("group", "{{ lookup('userGroups', department) }}"),
        ],
    ))
    .unwrap()
}

fn entry() -> Arc<Entry> {
    let mut e = Entry::new("CN=Zoë Åström,OU=Staff,DC=corp,DC=example");
    e.anchor = "anchor-1".into();
    e.push("givenName", AttrValue::Text("Zoë".into()));
    e.push("sn", AttrValue::Text("Åström".into()));
    e.push("mail", AttrValue::Text("Zoe.Astrom@Corp.Example".into()));
    e.push("department", AttrValue::Text(" sales ".into()));
    e.push("memberOf", AttrValue::Text("CN=A".into()));
    e.push("memberOf", AttrValue::Text("CN=B".into()));
    e.push("objectGUID", AttrValue::Binary(GUID_BYTES.to_vec()));
    e.push(
        "msDS-cloudExtensionAttribute1",
        AttrValue::Text("ext".into()),
    );
    // Attributes named like reserved names and functions lose to them.
    e.push("DN", AttrValue::Text("attribute-dn".into()));
    e.push("Account", AttrValue::Text("attribute-account".into()));
    e.push("format", AttrValue::Text("attribute-format".into()));
    Arc::new(e)
}

fn tables() -> LookupTables {
    LookupTables {
        companies: vec![Company {
            id: "c1".into(),
            name: "Corp".into(),
        }],
        user_groups: vec![
            UserGroup {
                id: "g-sales".into(),
                name: "Sales".into(),
                company_id: "c1".into(),
            },
            UserGroup {
                id: "g-staff".into(),
                name: "Staff".into(),
                company_id: "c1".into(),
            },
        ],
    }
}

fn ctx() -> RenderContext {
    RenderContext::new(Arc::new(LookupIndex::new(&tables()))).with_entry(entry())
}

fn render_with(
    engine: &mut TemplateEngine,
    source: &str,
    usage: Usage,
    ctx: &RenderContext,
) -> Result<String, RenderError> {
    let t = engine
        .compile(source, usage)
        .unwrap_or_else(|issues| panic!("{source}: {issues:?}"));
    engine.render(&t, ctx)
}

fn render(source: &str) -> String {
    render_with(&mut engine(), source, Usage::Attribute, &ctx()).unwrap()
}

fn issues(engine: &TemplateEngine, source: &str, usage: Usage) -> Vec<String> {
    engine
        .check(source, usage)
        .into_iter()
        .map(|i| format!("{}:{} {}", i.line, i.column, i.message))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// context names

#[test]
fn attributes_are_case_insensitive() {
    assert_eq!(
        render("{{ givenName }}|{{ givenname }}|{{ GIVENNAME }}"),
        "Zoë|Zoë|Zoë"
    );
    assert_eq!(
        render("{{ attrs['msds-CLOUDextensionattribute1'] }}"),
        "ext"
    );
    assert_eq!(render("{{ attrs.givenname }}"), "Zoë");
    assert_eq!(render("{{ user.MAIL }}"), "Zoe.Astrom@Corp.Example");
}

#[test]
fn first_value_and_all_values() {
    assert_eq!(render("{{ memberOf }}"), "CN=A");
    assert_eq!(render("{{ all.memberof | join(';') }}"), "CN=A;CN=B");
    assert_eq!(render("{{ all.memberOf | length }}"), "2");
    assert_eq!(
        render("{{ all.nothing | length }}"),
        "0",
        "absent is an empty list"
    );
    assert_eq!(
        render("{% for g in all.MEMBEROF %}[{{ g }}]{% endfor %}"),
        "[CN=A][CN=B]"
    );
}

#[test]
fn reserved_names_win_over_attributes() {
    assert_eq!(
        render("{{ dn }}"),
        "CN=Zoë Åström,OU=Staff,DC=corp,DC=example"
    );
    assert_eq!(
        render("{{ account }}"),
        "",
        "no account: undefined, not the attribute"
    );
    assert_eq!(render("{{ attrs.dn }}"), "attribute-dn", "attrs reaches it");
    assert_eq!(render("{{ attrs.account }}"), "attribute-account");
    assert_eq!(render("{{ format('first') }}"), "Zoë", "functions win too");
    assert_eq!(render("{{ anchor }}|{{ disabled }}"), "anchor-1|false");
    assert_eq!(
        render("{{ 'Suspended' if disabled else 'Active' }}"),
        "Active"
    );
    assert_eq!(render("{{ user.dn == dn }}"), "true");
}

#[test]
fn disabled_is_a_bool() {
    let mut e = (*entry()).clone();
    e.disabled = true;
    let ctx = ctx().with_entry(Arc::new(e));
    let out = render_with(
        &mut engine(),
        "{{ 'Suspended' if disabled else 'Active' }}",
        Usage::Attribute,
        &ctx,
    )
    .unwrap();
    assert_eq!(out, "Suspended");
}

#[test]
fn binary_renders_as_base64_and_guid_gets_bytes() {
    use base64::prelude::{BASE64_STANDARD, Engine as _};
    assert_eq!(
        render("{{ objectGUID }}"),
        BASE64_STANDARD.encode(GUID_BYTES)
    );
    assert_eq!(
        render("{{ objectGUID | guid }}"),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
    assert_eq!(
        render("{{ all.objectGUID[0] | guid }}"),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
}

#[test]
fn account_fields() {
    let account = serde_json::json!({
        "UserId": "u1", "Email": "a@b.c", "FirstName": null, "UserCustom1": 42,
        "Nested": {"Inner": "x"}, "List": [1, 2]
    });
    let ctx = ctx().with_account(Arc::new(account));
    let mut engine = engine();
    let mut r = |s: &str| render_with(&mut engine, s, Usage::Attribute, &ctx).unwrap();
    assert_eq!(r("{{ account.Email }}"), "a@b.c");
    assert_eq!(
        r("{{ account.email }}"),
        "a@b.c",
        "case-insensitive fallback"
    );
    assert_eq!(r("{{ account.FirstName }}"), "", "null is undefined");
    assert_eq!(r("{{ account.FirstName is defined }}"), "false");
    assert_eq!(r("{{ account.UserCustom1 + 1 }}"), "43");
    assert_eq!(r("{{ account.Nested.Inner }}"), "x");
    assert_eq!(r("{{ account.List | sum }}"), "3");
    assert_eq!(r("{{ account.Email if account else mail }}"), "a@b.c");
}

#[test]
fn no_entry_means_undefined_user_and_attributes() {
    let ctx = RenderContext::new(Arc::new(LookupIndex::default()))
        .with_account(Arc::new(serde_json::json!({"Email": "x@y"})));
    let mut engine = engine();
    let out = render_with(
        &mut engine,
        "[{{ user.mail }}][{{ mail }}][{{ dn }}][{{ account.Email }}]",
        Usage::WebhookBody(Escape::Text),
        &ctx,
    )
    .unwrap();
    assert_eq!(out, "[][][][x@y]");
}

#[test]
fn extra_vars_for_endpoint_queries() {
    let ctx = RenderContext::new(Arc::new(LookupIndex::default()))
        .with_var("email", "a@b.c")
        .with_var("companyId", "c1");
    let out = render_with(
        &mut engine(),
        "{{ email | urlencode }}/{{ companyId }}",
        Usage::EndpointQuery,
        &ctx,
    )
    .unwrap();
    assert_eq!(out, "a%40b.c/c1");
}

// ---------------------------------------------------------------------------------------------
// formats

#[test]
fn formats_render_in_the_current_context() {
    assert_eq!(render("{{ formats.corpEmail }}"), "zoe.astrom@corp.example");
    assert_eq!(
        render("{{ format('corpEmail') }}"),
        "zoe.astrom@corp.example"
    );
    assert_eq!(
        render("{{ formats['display'] }}"),
        "Åström, Zoë",
        "formats nest"
    );
    assert_eq!(
        render("{{ formats.corpEmail | upper }}"),
        "ZOE.ASTROM@CORP.EXAMPLE"
    );
}

#[test]
fn format_errors_carry_the_format_name_and_lookup_kind() {
    let mut e = (*entry()).clone();
    e.remove("department");
    e.push("department", AttrValue::Text("Nowhere".into()));
    let ctx = ctx().with_entry(Arc::new(e));
    let err =
        render_with(&mut engine(), "{{ formats.group }}", Usage::Attribute, &ctx).unwrap_err();
    assert_eq!(
        err,
        RenderError::LookupFailed {
            table: "userGroups".into(),
            name: "Nowhere".into()
        }
    );
    let err = render_with(
        &mut engine(),
        "{{ format('group') }}",
        Usage::Attribute,
        &ctx,
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::LookupFailed { .. }), "{err:?}");
}

#[test]
fn format_cycles_and_unknown_formats_are_rejected() {
    let err = TemplateEngine::new(settings(
        Undefined::Lenient,
        &[
            ("a", "x{{ formats.b }}"),
            ("b", "{{ format('a') }}"),
            ("c", "{{ formats.nope }}"),
            ("d", "{{ sn | bogus }}"),
        ],
    ))
    .unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|s| s.starts_with(
            "format \"a\": 1:13: formats refer to each other in a cycle: a -> b -> a"
        )),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("format \"b\"") && s.contains("cycle")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("\"c\": 1:12: unknown format 'nope'")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("\"d\": 1:9: unknown filter 'bogus'")),
        "{shown:#?}"
    );
}

#[test]
fn dynamic_format_recursion_is_bounded() {
    let mut engine = TemplateEngine::new(settings(
        Undefined::Lenient,
        &[("loop", "{{ format(sn) }}")],
    ))
    .unwrap();
    let mut e = Entry::new("CN=x");
    e.push("sn", AttrValue::Text("loop".into()));
    let ctx = RenderContext::new(Arc::new(LookupIndex::default())).with_entry(Arc::new(e));
    let err = render_with(&mut engine, "{{ format('loop') }}", Usage::Attribute, &ctx).unwrap_err();
    assert!(err.to_string().contains("nest more than"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// undefined

#[test]
fn lenient_renders_undefined_as_empty() {
    assert_eq!(
        render("[{{ nothing }}][{{ nothing.deeper }}][{{ user.nothing }}]"),
        "[][][]"
    );
    assert_eq!(render("{{ nothing | lower }}"), "");
}

#[test]
fn strict_errors_on_undefined_but_allows_tests() {
    let mut engine = TemplateEngine::new(settings(Undefined::Strict, &[])).unwrap();
    let ctx = ctx();
    let err = render_with(&mut engine, "x\n{{ nothing }}", Usage::Attribute, &ctx).unwrap_err();
    match &err {
        RenderError::Template { message, line } => {
            assert_eq!(message, "undefined value: `nothing` is undefined");
            assert_eq!(*line, Some(2));
        }
        other => panic!("{other:?}"),
    }
    assert!(render_with(&mut engine, "{{ nothing | lower }}", Usage::Attribute, &ctx).is_err());
    assert!(render_with(&mut engine, "{{ nothing.deeper }}", Usage::Attribute, &ctx).is_err());
    let ok = |engine: &mut TemplateEngine, s: &str| {
        render_with(engine, s, Usage::Attribute, &ctx).unwrap()
    };
    assert_eq!(
        ok(&mut engine, "{{ mail if mail else 'none' }}"),
        "Zoe.Astrom@Corp.Example"
    );
    assert_eq!(ok(&mut engine, "{{ nothing | default('dflt') }}"), "dflt");
    assert_eq!(ok(&mut engine, "{{ nothing is defined }}"), "false");
    assert_eq!(
        ok(&mut engine, "{% if nothing %}y{% else %}n{% endif %}"),
        "n"
    );
}

// ---------------------------------------------------------------------------------------------
// lookup

#[test]
fn lookup_matches_trimmed_and_case_insensitively() {
    assert_eq!(render("{{ lookup('userGroups', department) }}"), "g-sales");
    assert_eq!(render("{{ lookup('userGroups', '  STAFF ') }}"), "g-staff");
    assert_eq!(render("{{ lookup('companies', 'corp') }}"), "c1");
    assert_eq!(
        render("{{ lookup('userGroups', 'staff', company='CORP') }}"),
        "g-staff"
    );
    assert_eq!(
        render("{{ lookup('userGroups', 'staff', company='c1') }}"),
        "g-staff"
    );
}

#[test]
fn lookup_default_is_a_name_in_the_same_table() {
    assert_eq!(
        render("{{ lookup('userGroups', 'Nope', default='Staff') }}"),
        "g-staff"
    );
    assert_eq!(
        render("{{ lookup('userGroups', nothing, default='Staff') }}"),
        "g-staff"
    );
    assert_eq!(
        render("{{ lookup('userGroups', '', default='staff') }}"),
        "g-staff"
    );
    let err = render_with(
        &mut engine(),
        "{{ lookup('userGroups', 'Nope', default='Gone') }}",
        Usage::Attribute,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RenderError::LookupFailed {
            table: "userGroups".into(),
            name: "Gone".into()
        }
    );
}

#[test]
fn lookup_unresolved_strict_and_placeholder() {
    let mut engine = engine();
    let src = "{{ lookup('userGroups', ' Nope ') }}";
    let err = render_with(&mut engine, src, Usage::Attribute, &ctx()).unwrap_err();
    assert_eq!(
        err,
        RenderError::LookupFailed {
            table: "userGroups".into(),
            name: "Nope".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "lookup failed: no userGroups entry named \"Nope\""
    );
    let placeholder = ctx().with_lookup_mode(LookupMode::Placeholder);
    assert_eq!(
        render_with(&mut engine, src, Usage::Attribute, &placeholder).unwrap(),
        "<unresolved:userGroups/Nope>"
    );
    let err = render_with(
        &mut engine,
        "{{ lookup('companies', nothing) }}",
        Usage::Attribute,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RenderError::LookupFailed {
            table: "companies".into(),
            name: "".into()
        },
        "an empty name without default fails"
    );
}

#[test]
fn lookup_needs_company_when_the_tenant_has_several() {
    let mut t = tables();
    t.companies.push(Company {
        id: "c2".into(),
        name: "Other".into(),
    });
    t.user_groups.push(UserGroup {
        id: "g-other-staff".into(),
        name: "Staff".into(),
        company_id: "c2".into(),
    });
    let ctx = RenderContext::new(Arc::new(LookupIndex::new(&t))).with_entry(entry());
    let mut engine = engine();
    let err = render_with(
        &mut engine,
        "{{ lookup('userGroups', 'Sales') }}",
        Usage::Attribute,
        &ctx,
    )
    .unwrap_err();
    assert!(
        matches!(err, RenderError::LookupAmbiguous { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("company="), "{err}");
    assert_eq!(
        render_with(
            &mut engine,
            "{{ lookup('userGroups', 'Staff', company='other') }}",
            Usage::Attribute,
            &ctx
        )
        .unwrap(),
        "g-other-staff"
    );
    // The companies table itself needs no company.
    assert_eq!(
        render_with(
            &mut engine,
            "{{ lookup('companies', 'Other') }}",
            Usage::Attribute,
            &ctx
        )
        .unwrap(),
        "c2"
    );
}

// ---------------------------------------------------------------------------------------------
// secrets

fn resolver() -> Arc<dyn SecretResolver> {
    Arc::new(|reference: &str| match reference {
        "TOKEN" => Ok("s3cr3t-value".to_string()),
        "file:token.txt" => Ok("from-file".to_string()),
        other => Err(format!("environment variable {other} is not set")),
    })
}

#[test]
fn secret_resolves_where_allowed() {
    let ctx = ctx().with_secrets(resolver());
    let mut engine = engine();
    assert_eq!(
        render_with(
            &mut engine,
            "Bearer {{ secret('TOKEN') }}",
            Usage::WebhookHeader,
            &ctx
        )
        .unwrap(),
        "Bearer s3cr3t-value"
    );
    assert_eq!(
        render_with(
            &mut engine,
            "{{ secret('file:token.txt') }}",
            Usage::EndpointHeader,
            &ctx
        )
        .unwrap(),
        "from-file"
    );
    let err = render_with(
        &mut engine,
        "{{ secret('MISSING') }}",
        Usage::WebhookQuery,
        &ctx,
    )
    .unwrap_err();
    assert_eq!(
        err,
        RenderError::Secret {
            name: "MISSING".into(),
            reason: "environment variable MISSING is not set".into()
        }
    );
}

#[test]
fn secret_values_never_reach_error_messages() {
    let ctx = ctx().with_secrets(resolver());
    let mut engine = engine();
    for src in [
        "{{ secret('TOKEN') | guid }}",
        "{{ secret('TOKEN') | filetime }}",
        "{{ lookup('userGroups', secret('TOKEN')) }}",
        "{{ secret('TOKEN') + 1 }}",
    ] {
        let err =
            render_with(&mut engine, src, Usage::WebhookBody(Escape::Json), &ctx).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cr3t"), "{src}: {shown}");
    }
}

#[test]
fn secret_is_refused_at_render_time_too() {
    // Defence in depth: a template compiled for a plan-bound usage cannot reveal a secret even
    // if the static check were bypassed (here: by registering it directly).
    let ctx = ctx().with_secrets(resolver());
    let mut engine = engine();
    let index = engine.compiled.len();
    engine.add("bypass", "{{ secret('TOKEN') }}").unwrap();
    engine.compiled.push(Compiled {
        name: "bypass".into(),
        usage: Usage::Attribute,
        fast: None,
    });
    let t = CompiledTemplate {
        engine: engine.id,
        index,
    };
    let err = engine.render(&t, &ctx).unwrap_err();
    assert_eq!(
        err,
        RenderError::Secret {
            name: "TOKEN".into(),
            reason: "secret() is not allowed here: a secret must never reach a plan".into()
        }
    );
    // A webhook template rendered without a resolver in its context.
    let err = render_with(
        &mut engine,
        "{{ secret('TOKEN') }}",
        Usage::WebhookUrl,
        &super::tests::ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Secret { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// escaping

#[test]
fn webhook_bodies_escape_for_their_message_type() {
    let mut e = (*entry()).clone();
    e.remove("sn");
    e.push("sn", AttrValue::Text("O'Brien \"<&>\"\n".into()));
    let ctx = ctx().with_entry(Arc::new(e));
    let mut engine = engine();
    let mut r =
        |s: &str, escape| render_with(&mut engine, s, Usage::WebhookBody(escape), &ctx).unwrap();
    assert_eq!(
        r(r#"{"n": "{{ sn }}"}"#, Escape::Json),
        r#"{"n": "O'Brien \"<&>\"\n"}"#
    );
    assert_eq!(
        r("<n>{{ sn }}</n>", Escape::Xml),
        "<n>O&apos;Brien &quot;&lt;&amp;&gt;&quot;\n</n>"
    );
    assert_eq!(
        r("n={{ sn }}&g={{ givenName }}", Escape::Form),
        "n=O%27Brien+%22%3C%26%3E%22%0A&g=Zo%C3%AB"
    );
    assert_eq!(r("{{ sn }}", Escape::Text), "O'Brien \"<&>\"\n");
    assert_eq!(
        r(r#"{"n": {{ '"raw"' | safe }}}"#, Escape::Json),
        r#"{"n": "raw"}"#
    );
    // Attribute values are never escaped.
    assert_eq!(
        render_with(&mut engine, "{{ sn }}", Usage::Attribute, &ctx).unwrap(),
        "O'Brien \"<&>\"\n"
    );
}

// ---------------------------------------------------------------------------------------------
// conditions

#[test]
fn conditions_are_truthiness() {
    let mut engine = engine();
    let ctx = ctx();
    let mut eval = |expr: &str| {
        let c = engine
            .compile_expression(expr, Usage::Condition)
            .unwrap_or_else(|i| panic!("{expr}: {i:?}"));
        engine.eval_condition(&c, &ctx).unwrap()
    };
    assert!(eval("user.department | trim == 'sales'"));
    assert!(!eval("user.department == 'Sales'"));
    assert!(eval("not disabled"));
    assert!(!eval("nothing"));
    assert!(!eval("user.nothing == 'x'"));
    assert!(eval("'CN=B' in all.memberOf"));
    assert!(!eval("''"));
    assert!(eval("mail"));
    assert!(eval("all.memberOf"));
    assert!(!eval("all.nothing"));
    assert!(eval("mail\n  and givenName"), "multi-line expressions");
    assert!(
        !eval("sn == '%}{{ x }}{% if'"),
        "tag delimiters inside strings"
    );
    assert!(eval("'%}' ~ sn != ''"));
}

#[test]
fn condition_checks_report_expression_coordinates() {
    let engine = engine();
    assert_eq!(
        issues_expr(&engine, "user.mail | nope"),
        ["1:13 unknown filter 'nope'"]
    );
    assert_eq!(
        issues_expr(&engine, "user.mail =="),
        ["1:11 syntax error: unexpected end of input, expected expression"]
    );
    assert_eq!(issues_expr(&engine, "  "), ["1:1 empty expression"]);
    assert_eq!(
        issues_expr(&engine, "secret('X') == 'y'"),
        ["1:1 secret() is not allowed here: a secret must never reach a plan"]
    );
}

fn issues_expr(engine: &TemplateEngine, expr: &str) -> Vec<String> {
    engine
        .check_expression(expr, Usage::Condition)
        .into_iter()
        .map(|i| format!("{}:{} {}", i.line, i.column, i.message))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// checks (AST walk)

#[test]
fn valid_templates_have_no_issues() {
    let engine = engine();
    for src in [
        "{{ mail | lower }}",
        "{{ lookup('userGroups', department, default='Staff') }}",
        "{{ lookup('userGroups', department, company='Corp', default='Staff') }}",
        "{{ lookup(table, department) }}",
        "{{ 'Suspended' if disabled else 'Active' }}",
        "{% set x = mail | split('@') %}{{ x[0] }}",
        "{% macro m(v) %}{{ v | upper }}{% endmacro %}{{ m(sn) }}",
        "{% for g in all.memberOf if g is startingwith('CN=') %}{{ loop.index }}{% endfor %}",
        "{{ objectGUID | guid }} {{ objectSid | sid }} {{ pwdLastSet | filetime }} {{ whenCreated | gentime }}",
        "{{ sn | regex_replace('[^a-z]', '') | ascii | normalize }}",
        "{{ formats.corpEmail }}{{ format('display') }}{{ formats['first'] }}",
        "{{ range(3) | list }}{{ dict(a=1) }}{{ namespace() }}",
        "{% filter upper %}x{% endfilter %}",
        "plain text, no tags",
    ] {
        assert!(
            engine.check(src, Usage::Attribute).is_empty(),
            "{src}: {:?}",
            engine.check(src, Usage::Attribute)
        );
    }
}

#[test]
fn check_reports_unknown_names_with_locations() {
    let engine = engine();
    assert_eq!(
        issues(&engine, "{{ mail | lowr }}", Usage::Attribute),
        ["1:11 unknown filter 'lowr' (did you mean 'lower'?)"]
    );
    assert_eq!(
        issues(
            &engine,
            "a\n  {{ mail | trim | bogus(1) }}",
            Usage::Attribute
        ),
        ["2:20 unknown filter 'bogus'"]
    );
    assert_eq!(
        issues(&engine, "{{ mail is frobbed }}", Usage::Attribute),
        ["1:12 unknown test 'frobbed'"]
    );
    assert_eq!(
        issues(&engine, "{{ lower(mail) }}", Usage::Attribute),
        ["1:4 unknown function 'lower' ('lower' is a filter: write `value | lower`)"]
    );
    assert_eq!(
        issues(&engine, "{{ lokup('userGroups', x) }}", Usage::Attribute),
        ["1:4 unknown function 'lokup' (did you mean 'lookup'?)"]
    );
    assert_eq!(
        issues(&engine, "{{ mail | lookup }}", Usage::Attribute),
        ["1:11 unknown filter 'lookup' ('lookup' is a function: write `lookup(...)`)"]
    );
    assert_eq!(
        issues(
            &engine,
            "{{ format('corpMail') }}{{ formats.nope }}",
            Usage::Attribute
        ),
        [
            "1:11 unknown format 'corpMail' (did you mean 'corpEmail'?)",
            "1:36 unknown format 'nope'"
        ]
    );
}

#[test]
fn check_reports_every_issue_in_one_pass() {
    let engine = engine();
    let found = issues(
        &engine,
        "{{ a | x1 }}\n{{ b | x2 }}\n{{ f3() }}\n{{ c is x4 }}",
        Usage::Attribute,
    );
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[0].starts_with("1:8 "));
    assert!(found[1].starts_with("2:8 "));
    assert!(found[2].starts_with("3:4 "));
    assert!(found[3].starts_with("4:9 "));
}

#[test]
fn check_reports_syntax_errors_with_location() {
    let engine = engine();
    assert_eq!(
        issues(&engine, "hello\n{{ mail | }}", Usage::Attribute),
        ["2:11 syntax error: unexpected end of variable block, expected identifier"]
    );
    assert_eq!(
        issues(&engine, "{% if x %}unclosed", Usage::Attribute),
        ["1:11 syntax error: unexpected end of input, expected end of block"]
    );
    let found = issues(&engine, "{{ 'unterminated }}", Usage::Attribute);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("syntax error"), "{found:?}");
}

#[test]
fn check_reports_secret_misuse() {
    let engine = engine();
    let msg = "secret() is not allowed here: a secret must never reach a plan";
    for usage in [
        Usage::Attribute,
        Usage::Format,
        Usage::Condition,
        Usage::Other,
    ] {
        assert_eq!(
            issues(&engine, "x {{ secret('TOKEN') }}", usage),
            [format!("1:6 {msg}")],
            "{usage:?}"
        );
    }
    assert_eq!(
        issues(
            &engine,
            "{% set f = secret %}{{ f('T') }}",
            Usage::Attribute
        ),
        [format!("1:12 {msg}")],
        "an alias is caught too"
    );
    for usage in [
        Usage::WebhookUrl,
        Usage::WebhookHeader,
        Usage::WebhookQuery,
        Usage::WebhookBody(Escape::Json),
        Usage::EndpointHeader,
        Usage::EndpointQuery,
    ] {
        assert!(
            engine.check("{{ secret('TOKEN') }}", usage).is_empty(),
            "{usage:?}"
        );
    }
}

#[test]
fn check_reports_lookup_misuse() {
    let engine = engine();
    assert_eq!(
        issues(
            &engine,
            "{{ lookup('usergroups', department) }}",
            Usage::Attribute
        ),
        [
            "1:11 lookup(): unknown table 'usergroups' (tables: 'companies', 'userGroups') (did you mean 'userGroups'?)"
        ]
    );
    assert_eq!(
        issues(
            &engine,
            "{{ lookup('companies', 'Corp', company='x') }}",
            Usage::Attribute
        ),
        ["1:11 lookup(): company= applies to 'userGroups' only"]
    );
    assert_eq!(
        issues(
            &engine,
            "{{ lookup('userGroups', d, defualt='x') }}",
            Usage::Attribute
        ),
        ["1:36 lookup(): unknown keyword argument 'defualt' (did you mean 'default'?)"]
    );
    assert_eq!(
        issues(&engine, "{{ lookup('userGroups') }}", Usage::Attribute).len(),
        1
    );
}

#[test]
fn check_reports_invalid_literal_regex_and_unsupported_tags() {
    let engine = engine();
    let found = issues(
        &engine,
        "{{ sn | regex_replace('(', '') }}",
        Usage::Attribute,
    );
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("1:23 regex_replace: invalid pattern"),
        "{found:?}"
    );
    assert_eq!(
        issues(&engine, "{% include 'x' %}", Usage::Attribute),
        ["1:4 {% include %} is not supported in carbonite-sync templates (use formats)"]
    );
}

#[test]
fn compile_fails_with_all_issues_and_render_never_reparses() {
    let mut engine = engine();
    let err = engine
        .compile("{{ a | x }}{{ b | y }}", Usage::Attribute)
        .unwrap_err();
    assert_eq!(err.len(), 2);
    let t = engine
        .compile("{{ mail | lower }}", Usage::Attribute)
        .unwrap();
    let ctx = ctx();
    for _ in 0..3 {
        assert_eq!(engine.render(&t, &ctx).unwrap(), "zoe.astrom@corp.example");
    }
}

#[test]
fn handles_from_another_engine_are_rejected() {
    let mut a = engine();
    let b = engine();
    let t = a.compile("x", Usage::Attribute).unwrap();
    assert!(b.render(&t, &ctx()).is_err());
}

#[test]
fn filters_run_inside_templates() {
    assert_eq!(render("{{ 'Zoë Åström' | normalize }}"), "Zoe Astrom");
    assert_eq!(render("{{ 'Zoë Åström' | ascii }}"), "Zoe Astrom");
    assert_eq!(render("{{ mail | split('@') | first }}"), "Zoe.Astrom");
    assert_eq!(
        render("{{ mail | regex_replace('@.*$', '') }}"),
        "Zoe.Astrom"
    );
    assert_eq!(
        render("{{ '133248240000000000' | filetime }}"),
        "2023-04-01T12:00:00Z"
    );
    assert_eq!(
        render("{{ 133248240000000000 | filetime }}"),
        "2023-04-01T12:00:00Z"
    );
    assert_eq!(render("{{ '0' | filetime or 'never' }}"), "never");
    assert_eq!(
        render("{{ '20230401120000.0Z' | gentime }}"),
        "2023-04-01T12:00:00Z"
    );
    let err = render_with(&mut engine(), "{{ sn | guid }}", Usage::Attribute, &ctx()).unwrap_err();
    assert!(err.to_string().contains("guid:"), "{err}");
    let err = render_with(
        &mut engine(),
        "{{ sn | regex_replace(sn, 'x') }}",
        Usage::Attribute,
        &ctx(),
    );
    assert_eq!(err.unwrap(), "x", "dynamic patterns work");
}

#[test]
fn the_probed_name_lists_match_the_environment() {
    let engine = engine();
    for name in super::filters::FILTERS {
        assert!(engine.filters.contains(name), "{name}");
    }
    assert!(engine.filters.contains("lower"));
    assert!(engine.tests.contains("defined"));
    let functions: Vec<&str> = engine.functions.iter().map(String::as_str).collect();
    assert_eq!(
        functions,
        ["dict", "format", "lookup", "namespace", "range", "secret"]
    );
    for f in &functions {
        assert!(
            context::FUNCTIONS.contains(f),
            "{f} must win over attributes"
        );
    }
}

#[test]
fn strict_lookup_accepts_an_undefined_name_with_default() {
    let mut engine = TemplateEngine::new(settings(Undefined::Strict, &[])).unwrap();
    let out = render_with(
        &mut engine,
        "{{ lookup('userGroups', nothing, default='Staff') }}",
        Usage::Attribute,
        &ctx(),
    )
    .unwrap();
    assert_eq!(out, "g-staff");
}

#[test]
fn engine_and_context_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TemplateEngine>();
    assert_send_sync::<RenderContext>();
    assert_send_sync::<CompiledTemplate>();
}

#[test]
fn functions_work_inside_macros_and_loops() {
    assert_eq!(
        render("{% macro g(d) %}{{ lookup('userGroups', d) }}{% endmacro %}{{ g(department) }}"),
        "g-sales"
    );
    assert_eq!(
        render("{% for d in ['staff', 'sales'] %}{{ lookup('userGroups', d) }};{% endfor %}"),
        "g-staff;g-sales;"
    );
    assert_eq!(
        render("{% macro m() %}{{ formats.first }}{% endmacro %}{{ m() }}"),
        "Zoë"
    );
}

#[test]
fn identical_templates_share_a_handle() {
    let mut engine = engine();
    let a = engine.compile("{{ sn }}", Usage::Attribute).unwrap();
    let b = engine.compile("{{ sn }}", Usage::Attribute).unwrap();
    let c = engine
        .compile("{{ sn }}", Usage::WebhookBody(Escape::Json))
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any source, checked and (when valid) rendered against any attribute bytes: never a
        /// panic, only issues or errors.
        #[test]
        fn arbitrary_templates_never_panic(
            source in prop_oneof![
                "\\PC{0,60}",
                "\\{\\{ [a-z|() ',]{0,30} \\}\\}",
                "\\{% [a-z =|()']{0,30} %\\}",
            ],
            bytes in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let mut engine = engine();
            let _ = engine.check(&source, Usage::Attribute);
            let _ = engine.check_expression(&source, Usage::Condition);
            let mut e = (*entry()).clone();
            e.push("blob", AttrValue::Binary(bytes));
            let ctx = ctx().with_entry(Arc::new(e));
            if let Ok(t) = engine.compile(&source, Usage::Attribute) {
                let _ = engine.render(&t, &ctx);
            }
            if let Ok(c) = engine.compile_expression(&source, Usage::Condition) {
                let _ = engine.eval_condition(&c, &ctx);
            }
            for filter in ["guid", "sid", "filetime", "gentime", "normalize", "ascii", "split"] {
                let t = engine.compile(&format!("{{{{ blob | {filter} }}}}"), Usage::Attribute).unwrap();
                let _ = engine.render(&t, &ctx);
            }
        }

        /// The fast path renders exactly what minijinja renders, for templates of its shapes
        /// and near misses, against entries with any text (or binary, absent, multi-valued)
        /// values, disabled or not, with and without extra variables, in both undefined modes.
        #[test]
        fn fast_path_renders_like_minijinja(
            name in prop_oneof![
                Just("mail".to_string()), Just("Mail".to_string()), Just("givenName".to_string()),
                Just("blob".to_string()), Just("missing".to_string()), Just("dn".to_string()),
                Just("disabled".to_string()), Just("anchor".to_string()), Just("format".to_string()),
                Just("none".to_string()), Just("true".to_string()), Just("x1".to_string()),
                "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
            ],
            filter in prop_oneof![
                Just(""), Just("lower"), Just("upper"), Just("trim"), Just("title"),
                Just("length"), Just("lower | upper"),
            ],
            lit in prop_oneof![
                "[a-zA-Z ]{0,6}", "\\PC{0,8}", Just("Corp".to_string()), Just(" sales ".to_string()),
                Just("c1".to_string()),
            ],
            lit2 in "[a-zA-Z '\"]{0,6}",
            ws in prop_oneof![Just(""), Just(" "), Just("  "), Just("\t")],
            shape in 0usize..9,
            value in prop_oneof!["\\PC{0,12}", "[ \t]{0,2}[a-zA-ZÅÖßİ]{0,5}[ \t]{0,2}"],
            second in proptest::option::of("\\PC{0,4}"),
            disabled in any::<bool>(),
            strict in any::<bool>(),
            with_var in any::<bool>(),
            table in prop_oneof![Just("companies"), Just("userGroups")],
        ) {
            let source = match shape {
                0 => lit.clone(),
                1 => format!("{{{{{ws}{name}{ws}}}}}"),
                2 if filter.is_empty() => format!("{{{{ {name} }}}}"),
                2 => format!("{{{{{ws}{name}{ws}|{ws}{filter}{ws}}}}}"),
                3 => format!("{{{{ '{lit}' if disabled else \"{lit2}\" }}}}"),
                4 => format!("{{{{{ws}'{lit2}'{ws}if{ws}not disabled else '{lit}'{ws}}}}}"),
                5 => format!("{{{{ lookup('{table}',{ws}'{lit}') }}}}"),
                6 => format!("{{{{ lookup(\"{table}\", \"{value}\") }}}}"),
                7 => format!("{{{{- {name} }}}}{lit}"),
                _ => format!("{lit}{{{{ {name} | {filter} }}}}\n"),
            };
            let mut engine = TemplateEngine::new(settings(
                if strict { Undefined::Strict } else { Undefined::Lenient },
                &[],
            ))
            .unwrap();
            let Ok(t) = engine.compile(&source, Usage::Attribute) else {
                return Ok(());
            };
            let mut e = Entry::new("CN=Ann,DC=x");
            e.anchor = "a-1".into();
            e.disabled = disabled;
            e.push("mail", AttrValue::Text(value.clone()));
            if let Some(v) = &second {
                e.push("mail", AttrValue::Text(v.clone()));
            }
            e.push("givenName", AttrValue::Text(lit.clone()));
            e.push("blob", AttrValue::Binary(value.as_bytes().to_vec()));
            e.push(&name, AttrValue::Text(value.clone()));
            let mut ctx = ctx().with_entry(Arc::new(e));
            if with_var {
                ctx = ctx.with_var("mail", "from-var");
            }
            let fast = engine.render(&t, &ctx);
            let vm = engine.render_vm(&t, &ctx);
            prop_assert_eq!(fast, vm, "template {:?}", source);
        }

        /// The shapes the fast path claims are recognised (so the property above exercises it).
        #[test]
        fn fast_path_recognises_its_shapes(name in "[a-z][a-zA-Z0-9_]{0,6}", lit in "[a-z0-9 ]{0,8}") {
            prop_assume!(!["not", "and", "or", "in", "is", "if", "else", "none", "true", "false",
                "loop", "self", "super", "varargs", "kwargs", "dn", "disabled", "anchor", "user",
                "account", "formats", "attrs", "all", "lookup", "secret", "format", "range", "dict",
                "namespace"].contains(&name.as_str()));
            let mut engine = engine();
            for source in [
                lit.clone(),
                format!("{{{{ {name} }}}}"),
                format!("{{{{ {name} | lower }}}}"),
                format!("{{{{ '{lit}' if disabled else 'x' }}}}"),
                format!("{{{{ lookup('companies', '{lit}') }}}}"),
            ] {
                let t = engine.compile(&source, Usage::Attribute).unwrap();
                prop_assert!(engine.has_fast_path(&t), "{:?}", source);
            }
        }
    }
}
