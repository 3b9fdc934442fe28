//! The `#[monitor]` attribute: a rustmon event for each call of a sync or async function, like
//! `tracing`'s `#[instrument]`.
//!
//! Applications use it through the facade as `#[rustmon::monitor]` (the facade re-exports
//! [`macro@facade_monitor`] under that name); crates that depend on `rustmon-core` directly use
//! [`macro@monitor`].

use proc_macro::TokenStream;
use proc_macro2::{Delimiter, Group, Span, TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream, Parser as _};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, LitStr, Path, ReturnType, Signature, Token, Visibility};

/// Records each call of the function as a rustmon event on the global monitor.
///
/// # Contract
/// - **Event.** Each call starts an event with `rustmon_core::Event::start`
///   (the global monitor; kind `custom` unless `kind` says otherwise) named after the function
///   (its bare name, without module path or type; `name` overrides it), with the current context
///   as parent. The event is the current context while the body runs, so events started inside,
///   including calls of other `#[monitor]` functions, are its children. It is finished when the
///   function returns, by any path (`return`, `?`, panic unwinding). A panic unwinding out of
///   the function is recorded as an error of type `panic` (status error).
/// - **Async functions.** The event starts when the future is **first polled** (an `async fn`
///   runs nothing before), with the context current at that poll as parent; the body is polled
///   with the event's context (`FutureExt::with_context`), so it stays current across `.await`s
///   and on whichever thread the future resumes. When the body completes, the event is finished.
///   If the future is dropped before completing (a timeout, a `select!` that took another branch,
///   an aborted task), the event is finished at that moment with the attribute
///   `rustmon.cancelled = true`. To parent a spawned call on its caller, spawn it with
///   `.in_current_context()`.
/// - **Options**, comma-separated, each at most once:
///   - `name = "..."`: the event name (keep it low-cardinality).
///   - `kind = "..."`: one of `server`, `client`, `database`, `cache`, `messaging`, `rpc`,
///     `runtime`, `custom`, `segment`, `network`; anything else is a compile error naming it.
///   - `err`: when the function returns `Err(e)`, record the error (type
///     `std::any::type_name` of `e`'s type, message `e.to_string()`) and set the status to error.
///     `err(Debug)` uses `{:?}` for the message instead; `err(Display)` is the default. The return
///     type must be a `Result`.
///   - `fields(key = expr, ...)`: attributes set when the event starts. Keys are dotted names
///     (`http.route`) or string literals; a value is any `Into<Value>` expression (integers,
///     floats, `bool`, `&'static str`, `String`), `%expr` for its `Display` string, `?expr` for
///     its `Debug` string; `fields(id)` is short for `fields(id = id)`. The expressions are
///     evaluated only when the event records (monitoring enabled), before the body runs.
///   - `crate = "path"`: where the core crate is: by default `::rustmon_core` for this macro and
///     `::rustmon::core` for [`macro@facade_monitor`] (`rustmon::monitor`).
/// - **Cost.** With monitoring disabled a call costs one relaxed atomic load and a few branches;
///   the `fields` expressions are not evaluated.
/// - Functions returning `impl Future` without being `async fn` are timed as sync functions: the
///   event covers creating the future, not running it. Write them as `async fn` instead.
///
/// # Examples
/// ```
/// use rustmon_macros::monitor;
///
/// #[monitor(kind = "database", fields(user.id = id))]
/// fn load_user(id: u64) -> Option<String> {
///     (id == 7).then(|| "ada".to_owned())
/// }
///
/// #[monitor(err, name = "checkout")]
/// async fn place_order(items: u32) -> Result<u64, std::io::Error> {
///     let user = load_user(7); // a child of `checkout`
///     Ok(u64::from(items) + user.map_or(0, |u| u.len() as u64))
/// }
///
/// struct Cart(Vec<u32>);
/// impl Cart {
///     #[monitor(fields(items = self.0.len()))]
///     fn total(&self) -> u32 {
///         self.0.iter().sum()
///     }
/// }
/// # assert_eq!(Cart(vec![1, 2]).total(), 3);
/// # assert_eq!(load_user(7).as_deref(), Some("ada"));
/// ```
#[proc_macro_attribute]
pub fn monitor(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), CORE_PATH).into()
}

/// [`macro@monitor`] as the `rustmon` facade re-exports it, `#[rustmon::monitor]`: the same
/// attribute, whose generated code names the core crate `::rustmon::core`, so that an application
/// depending only on `rustmon` needs nothing else.
///
/// # Contract
/// Everything [`macro@monitor`] documents, except the default of the `crate` option.
///
/// # Examples
/// ```ignore
/// // Cargo.toml: rustmon = "…"
/// #[rustmon::monitor(kind = "database", fields(user.id = id))]
/// fn load_user(id: u64) -> Option<User> {
///     /* … */
/// }
/// ```
#[proc_macro_attribute]
pub fn facade_monitor(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), FACADE_PATH).into()
}

/// The default path of the core crate, for [`macro@monitor`].
const CORE_PATH: &str = "::rustmon_core";
/// The default path of the core crate, for [`macro@facade_monitor`].
const FACADE_PATH: &str = "::rustmon::core";

fn expand(args: TokenStream2, item: TokenStream2, default_path: &str) -> TokenStream2 {
    let args = match Args::parse_terminated.parse2(args) {
        Ok(args) => args,
        // Keep the function so that its callers do not report errors of their own.
        Err(e) => return with_item(e, item),
    };
    let func = match syn::parse2::<MaybeItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => return with_item(e, item),
    };
    generate(args, func, default_path)
}

fn with_item(error: syn::Error, item: TokenStream2) -> TokenStream2 {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// The kind names `rustmon_core::Kind::parse` accepts, with their variants.
const KINDS: [(&str, &str); 10] = [
    ("server", "Server"),
    ("client", "Client"),
    ("database", "Database"),
    ("cache", "Cache"),
    ("messaging", "Messaging"),
    ("rpc", "Rpc"),
    ("runtime", "Runtime"),
    ("custom", "Custom"),
    ("segment", "Segment"),
    ("network", "Network"),
];

#[derive(Default)]
struct Args {
    name: Option<LitStr>,
    kind: Option<Ident>,
    err: Option<ErrMode>,
    fields: Option<Vec<Field>>,
    krate: Option<Path>,
}

#[derive(Clone, Copy)]
enum ErrMode {
    Display,
    Debug,
}

struct Field {
    key: LitStr,
    value: FieldValue,
}

enum FieldValue {
    Expr(Expr),
    Display(Expr),
    Debug(Expr),
}

fn duplicate(span: Span, option: &str) -> syn::Error {
    syn::Error::new(span, format!("`{option}` is given more than once"))
}

impl Args {
    fn parse_terminated(input: ParseStream<'_>) -> syn::Result<Args> {
        let mut args = Args::default();
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                let token: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path = if input.peek(LitStr) {
                    input.parse::<LitStr>()?.parse_with(Path::parse_mod_style)?
                } else {
                    input.call(Path::parse_mod_style)?
                };
                if args.krate.replace(path).is_some() {
                    return Err(duplicate(token.span, "crate"));
                }
            } else {
                let option = input.call(Ident::parse_any)?;
                match option.to_string().as_str() {
                    "name" => {
                        input.parse::<Token![=]>()?;
                        let name: LitStr = input.parse()?;
                        if name.value().is_empty() {
                            return Err(syn::Error::new(name.span(), "the name is empty"));
                        }
                        if args.name.replace(name).is_some() {
                            return Err(duplicate(option.span(), "name"));
                        }
                    }
                    "kind" => {
                        input.parse::<Token![=]>()?;
                        let lit: LitStr = input.parse()?;
                        let value = lit.value();
                        let Some((_, variant)) = KINDS.iter().find(|(n, _)| *n == value) else {
                            let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                            return Err(syn::Error::new(
                                lit.span(),
                                format!(
                                    "unknown kind `{value}`; expected one of: {}",
                                    names.join(", ")
                                ),
                            ));
                        };
                        if args.kind.replace(Ident::new(variant, lit.span())).is_some() {
                            return Err(duplicate(option.span(), "kind"));
                        }
                    }
                    "err" => {
                        let mode = if input.peek(syn::token::Paren) {
                            let content;
                            syn::parenthesized!(content in input);
                            let mode: Ident = content.parse()?;
                            match mode.to_string().as_str() {
                                "Display" => ErrMode::Display,
                                "Debug" => ErrMode::Debug,
                                other => {
                                    return Err(syn::Error::new(
                                        mode.span(),
                                        format!(
                                            "unknown error format `{other}`; expected `Display` or `Debug`"
                                        ),
                                    ));
                                }
                            }
                        } else {
                            ErrMode::Display
                        };
                        if args.err.replace(mode).is_some() {
                            return Err(duplicate(option.span(), "err"));
                        }
                    }
                    "fields" => {
                        let content;
                        syn::parenthesized!(content in input);
                        let fields = Punctuated::<Field, Token![,]>::parse_terminated(&content)?;
                        if args.fields.replace(fields.into_iter().collect()).is_some() {
                            return Err(duplicate(option.span(), "fields"));
                        }
                    }
                    other => {
                        return Err(syn::Error::new(
                            option.span(),
                            format!(
                                "unknown option `{other}`; expected `name`, `kind`, `err`, `fields` or `crate`"
                            ),
                        ));
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Field> {
        let (key, shorthand) = if input.peek(LitStr) {
            (input.parse::<LitStr>()?, None)
        } else {
            let first = input.call(Ident::parse_any)?;
            let mut key = first.unraw().to_string();
            let mut dotted = false;
            while input.peek(Token![.]) {
                input.parse::<Token![.]>()?;
                key.push('.');
                key.push_str(&input.call(Ident::parse_any)?.unraw().to_string());
                dotted = true;
            }
            let shorthand = (!dotted).then_some(first.clone());
            (LitStr::new(&key, first.span()), shorthand)
        };
        if !input.peek(Token![=]) {
            // `fields(id)`: the variable `id`.
            return match shorthand {
                Some(ident) => Ok(Field {
                    key,
                    value: FieldValue::Expr(syn::parse_quote!(#ident)),
                }),
                None => Err(input.error("expected `=` and a value after a field name")),
            };
        }
        input.parse::<Token![=]>()?;
        let value = if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            FieldValue::Display(input.parse()?)
        } else if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            FieldValue::Debug(input.parse()?)
        } else {
            FieldValue::Expr(input.parse()?)
        };
        Ok(Field { key, value })
    }
}

/// A function, or a method in an `impl` or a trait; its body is kept as tokens, unparsed.
struct MaybeItemFn {
    /// Outer attributes, and the body's inner attributes (`#![allow(..)]`) turned into outer ones,
    /// because the body is moved into blocks and closures where inner attributes are not allowed.
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    /// The body without its inner attributes, braces included.
    body: Group,
    /// The body's statements, without braces or inner attributes.
    stmts: TokenStream2,
}

impl Parse for MaybeItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<MaybeItemFn> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        if input.peek(Token![;]) {
            return Err(syn::Error::new(
                sig.ident.span(),
                "#[monitor] needs a function with a body",
            ));
        }
        let braced: Group = input.parse()?;
        if braced.delimiter() != Delimiter::Brace {
            return Err(syn::Error::new(braced.span(), "expected the function body"));
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function"));
        }
        let (inner, stmts) = (|body: ParseStream<'_>| {
            let inner = body.call(Attribute::parse_inner)?;
            Ok((inner, body.parse::<TokenStream2>()?))
        })
        .parse2(braced.stream())?;
        let mut attrs = attrs;
        attrs.extend(inner.into_iter().map(|mut a| {
            a.style = syn::AttrStyle::Outer;
            a
        }));
        let mut body = Group::new(Delimiter::Brace, stmts.clone());
        body.set_span(braced.span());
        Ok(MaybeItemFn {
            attrs,
            vis,
            sig,
            body,
            stmts,
        })
    }
}

/// Whether a return type can be written as a `let` type annotation: no `impl Trait` in it, and
/// not `!` (unstable in that position).
fn nameable(ty: &syn::Type) -> bool {
    if matches!(ty, syn::Type::Never(_)) {
        return false;
    }
    fn walk(tokens: TokenStream2) -> bool {
        tokens.into_iter().all(|t| match t {
            TokenTree::Ident(i) => i != "impl",
            TokenTree::Group(g) => walk(g.stream()),
            _ => true,
        })
    }
    walk(ty.to_token_stream())
}

fn generate(args: Args, func: MaybeItemFn, default_path: &str) -> TokenStream2 {
    let MaybeItemFn {
        attrs,
        vis,
        sig,
        body,
        stmts,
    } = func;
    let krate = match args.krate {
        Some(path) => path,
        None => match syn::parse_str::<Path>(default_path) {
            Ok(path) => path,
            Err(e) => return e.to_compile_error(),
        },
    };
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span()));
    let kind = args
        .kind
        .unwrap_or_else(|| Ident::new("Custom", Span::call_site()));

    // Our locals are hygienic: the body cannot see them, nor shadow them.
    let event = Ident::new("__rustmon_event", Span::mixed_site());
    let result = Ident::new("__rustmon_result", Span::mixed_site());
    let error = Ident::new("__rustmon_error", Span::mixed_site());

    let fields = args.fields.unwrap_or_default();
    let set_fields = (!fields.is_empty()).then(|| {
        let sets = fields.iter().map(|Field { key, value }| {
            let value = match value {
                FieldValue::Expr(e) => quote!(#e),
                FieldValue::Display(e) => quote!(::std::string::ToString::to_string(&(#e))),
                FieldValue::Debug(e) => quote!(::std::format!("{:?}", #e)),
            };
            quote!(#event.set(#key, #value);)
        });
        quote! {
            if #event.is_recording() {
                #(#sets)*
            }
        }
    });
    let start = quote! {
        #[allow(unused_mut)]
        let mut #event = #krate::Event::start(#krate::Kind::#kind, #name);
        #set_fields
    };

    let result_type = match &sig.output {
        ReturnType::Type(_, ty) if nameable(ty) => Some(quote!(: #ty)),
        ReturnType::Type(..) => None,
        ReturnType::Default => Some(quote!(: ())),
    };
    let record_error = args.err.map(|mode| {
        let message = match mode {
            ErrMode::Display => quote!(#error),
            ErrMode::Debug => quote!(::core::format_args!("{:?}", #error)),
        };
        quote! {
            if let ::core::result::Result::Err(#error) = &#result {
                #event.record_error(::core::any::type_name_of_val(#error), #message);
            }
        }
    });

    let is_async = sig.asyncness.is_some();
    let guard = Ident::new("__rustmon_guard", Span::mixed_site());
    // A future dropped before completing still holds its event when the guard drops.
    let on_unfinished = is_async.then(|| {
        quote! {
            else {
                event.set("rustmon.cancelled", true);
            }
        }
    });
    // Holds the event (`None` when it does not record) and whether the thread was already
    // panicking when the call started; records a panic that unwinds through the function.
    let guard_setup = quote! {
        struct __RustmonGuard(::core::option::Option<#krate::Event>, bool);
        impl ::core::ops::Drop for __RustmonGuard {
            fn drop(&mut self) {
                if let ::core::option::Option::Some(event) = &mut self.0 {
                    if ::std::thread::panicking() && !self.1 {
                        event.record_error("panic", "the function panicked");
                    } #on_unfinished
                }
            }
        }
        #[allow(unused_mut)]
        let mut #guard = if #event.is_recording() {
            __RustmonGuard(::core::option::Option::Some(#event), ::std::thread::panicking())
        } else {
            __RustmonGuard(::core::option::Option::None, false)
        };
    };
    let record_error = record_error.map(|record| {
        quote! {
            if let ::core::option::Option::Some(#event) = #guard.0.as_mut() {
                #record
            }
        }
    });

    let new_body = if is_async {
        let context = Ident::new("__rustmon_context", Span::mixed_site());
        let body_future = Ident::new("__rustmon_body", Span::mixed_site());
        quote! {
            #start
            #guard_setup
            // `None` when monitoring is off: the body is then polled as it is, at no cost.
            let #context = #guard.0.as_ref().and_then(#krate::Event::context);
            let #body_future = async move #body;
            let #result #result_type = match #context {
                ::core::option::Option::Some(_) => {
                    #krate::context::FutureExt::with_context(#body_future, #context).await
                }
                ::core::option::Option::None => #body_future.await,
            };
            #record_error
            if let ::core::option::Option::Some(#event) = #guard.0.take() {
                #event.finish();
            }
            #result
        }
    } else {
        // Entering an event that does not record changes nothing: skip the thread-local accesses.
        let entered = Ident::new("__rustmon_entered", Span::mixed_site());
        let enter = quote! {
            let #entered = #guard.0.as_ref().map(#krate::Event::enter);
        };
        match &record_error {
            // The body's statements follow ours in the same block, so that its value, coercions,
            // divergence and lints are exactly those of the original function; its locals drop
            // first, then the context is restored and the guard finishes the event.
            None => quote! {
                #start
                #guard_setup
                #enter
                #stmts
            },
            Some(record) => quote! {
                #start
                #guard_setup
                #enter
                // Called through an `FnOnce` bound so that the body may move captured references
                // out (a `&mut self` method returning a borrow of `self`).
                #[inline(always)]
                fn __rustmon_call_once<R, F: ::core::ops::FnOnce() -> R>(f: F) -> R {
                    f()
                }
                let #result #result_type = __rustmon_call_once(move || #body);
                ::core::mem::drop(#entered);
                #record
                #result
            },
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #new_body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> String {
        expand(args.parse().unwrap(), item.parse().unwrap(), CORE_PATH).to_string()
    }

    fn error_of(args: &str, item: &str) -> String {
        let out = expand_str(args, item);
        assert!(out.contains("compile_error"), "expected an error: {out}");
        out
    }

    #[test]
    fn kinds_match_the_core() {
        let core: Vec<&str> = rustmon_core::Kind::ALL.iter().map(|k| k.as_str()).collect();
        let ours: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(core, ours);
        for (name, variant) in KINDS {
            assert_eq!(
                format!("{:?}", rustmon_core::Kind::parse(name).unwrap()),
                variant
            );
        }
    }

    #[test]
    fn bad_options_are_compile_errors_that_name_them() {
        let f = "fn f() {}";
        assert!(error_of(r#"kind = "databse""#, f).contains("unknown kind `databse`"));
        assert!(error_of("colour = 1", f).contains("unknown option `colour`"));
        assert!(
            error_of(r#"name = "a", name = "b""#, f).contains("`name` is given more than once")
        );
        assert!(error_of("err(Pretty)", f).contains("unknown error format `Pretty`"));
        assert!(error_of(r#"name = """#, f).contains("the name is empty"));
        assert!(error_of("fields(a.b)", f).contains("expected `=`"));
        let out = error_of("", "fn no_body(&self);");
        assert!(out.contains("needs a function with a body"));
        // The function is kept after an argument error.
        assert!(error_of("colour", f).contains("fn f"));
    }

    #[test]
    fn options_parse() {
        let out = expand_str(
            r#"name = "n", kind = "cache", err(Debug), fields(a.b = 1, "c" = %x, d = ?y, z), crate = "my::core""#,
            "fn f(x: u8, y: u8, z: u8) -> Result<(), ()> { Ok(()) }",
        );
        assert!(out.contains("my :: core :: Kind :: Cache"), "{out}");
        assert!(out.contains(r#""a.b""#) && out.contains(r#""c""#) && out.contains(r#""z""#));
        assert!(out.contains("record_error"));
        let out = expand_str("crate = crate::x", "async fn f() -> impl Sized {}");
        assert!(out.contains("crate :: x :: Event"), "{out}");
        let out = expand(
            "".parse().unwrap(),
            "fn f() {}".parse().unwrap(),
            FACADE_PATH,
        );
        assert!(
            out.to_string().contains(":: rustmon :: core :: Event"),
            "{out}"
        );
    }
}
