//! Texts in the user's language, and times in the site's zone.
//!
//! Every text is a Fluent message in `selfservice/locales/<lang>/*.ftl` (one file per page
//! area, shared terms in `locales/core.ftl`). The folders are found when the program is built,
//! so a new language is a new folder, with no Rust edit. An administrator can add languages or
//! change single messages without rebuilding: `[site] locales = DIR` is searched first, with
//! the same layout (`DIR/<lang>/*.ftl`), its folders found at start.
//!
//! A message is looked up in the negotiated language, then the site's default language, then
//! English; in each, the admin's folder before the built-in one. Values never contain HTML:
//! the templates escape them.

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{ArcLoader, LanguageIdentifier, Loader, StaticLoader};
use std::collections::HashMap;
use std::path::Path;

fluent_templates::static_loader! {
    static BUILT_IN = {
        locales: "./locales",
        fallback_language: "en",
        core_locales: "./locales/core.ftl",
        // Values go into HTML through the escaping templates and into plain-text mails; the
        // bidi isolation marks Fluent would put around them would show up as stray characters
        // in mails and logs. Labels cannot contain direction controls (`issue::check_label`).
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// One language offered.
#[derive(Debug, Clone)]
pub struct Language {
    /// Its tag (`en`, `ja`).
    pub id: LanguageIdentifier,
    /// Its name in itself (`English`, `日本語`), the catalogue's `language-name`.
    pub name: String,
}

/// The built-in messages plus the administrator's.
pub struct Catalogue {
    extra: Option<ArcLoader>,
    languages: Vec<Language>,
    default: LanguageIdentifier,
    english: LanguageIdentifier,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("languages", &self.languages)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

fn built_in() -> &'static StaticLoader {
    &BUILT_IN
}

impl Catalogue {
    /// The built-in catalogue plus `extra` (`[site] locales`), with `default` for browsers
    /// that ask for no language offered.
    pub fn load(extra: Option<&Path>, default: &str) -> Result<Catalogue, String> {
        let extra = match extra {
            None => None,
            Some(dir) => {
                let core = dir.join("core.ftl");
                let shared = core.is_file().then(|| vec![core]);
                let loader = ArcLoader::builder(dir, english())
                    .shared_resources(shared.as_deref())
                    .customize(|bundle| bundle.set_use_isolating(false))
                    .build()
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                Some(loader)
            }
        };
        let mut ids: Vec<LanguageIdentifier> = built_in().locales().cloned().collect();
        if let Some(x) = &extra {
            ids.extend(x.locales().cloned());
        }
        ids.sort_by_key(ToString::to_string);
        ids.dedup();
        let default: LanguageIdentifier = default
            .parse()
            .map_err(|_| format!("{default:?} is not a language tag"))?;
        if !ids.contains(&default) {
            return Err(format!(
                "default language {default} has no texts (available: {})",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut catalogue = Catalogue {
            extra,
            languages: Vec::new(),
            default,
            english: english(),
        };
        catalogue.languages = ids
            .into_iter()
            .map(|id| Language {
                name: catalogue.text(&id, "language-name", &[]),
                id,
            })
            .collect();
        Ok(catalogue)
    }

    /// The languages offered, by tag.
    #[must_use]
    pub fn languages(&self) -> &[Language] {
        &self.languages
    }

    /// A language offered with exactly this tag.
    #[must_use]
    pub fn offered(&self, tag: &str) -> Option<&LanguageIdentifier> {
        let id: LanguageIdentifier = tag.parse().ok()?;
        self.languages.iter().map(|l| &l.id).find(|l| **l == id)
    }

    /// The page's language: an explicit choice (`?lang=`, then the cookie the switcher set) if
    /// it is offered, else the best match of `Accept-Language`, else the site's default.
    #[must_use]
    pub fn negotiate(&self, chosen: &[&str], accept_language: Option<&str>) -> LanguageIdentifier {
        if let Some(id) = chosen.iter().find_map(|c| self.offered(c)) {
            return id.clone();
        }
        let requested = accept_language
            .map(fluent_langneg::accepted_languages::parse)
            .unwrap_or_default();
        let available: Vec<&LanguageIdentifier> = self.languages.iter().map(|l| &l.id).collect();
        fluent_langneg::negotiate_languages(
            &requested,
            &available,
            Some(&&self.default),
            fluent_langneg::NegotiationStrategy::Lookup,
        )
        .first()
        .map_or_else(|| self.default.clone(), |l| (**l).clone())
    }

    /// The message `id` in `lang` (or the fallbacks), `args` filled in; the id itself if no
    /// catalogue has it (a unit test makes sure every id used exists in English).
    #[must_use]
    pub fn text(
        &self,
        lang: &LanguageIdentifier,
        id: &str,
        args: &[(&str, FluentValue<'_>)],
    ) -> String {
        self.lookup(lang, id, args).unwrap_or_else(|| id.to_owned())
    }

    fn lookup(
        &self,
        lang: &LanguageIdentifier,
        id: &str,
        args: &[(&str, FluentValue<'_>)],
    ) -> Option<String> {
        let map: HashMap<&str, FluentValue<'_>> = args.iter().cloned().collect();
        let args = (!map.is_empty()).then_some(&map);
        let chain = [lang, &self.default, &self.english];
        for (i, l) in chain.iter().enumerate() {
            if chain[..i].contains(l) {
                continue;
            }
            if let Some(extra) = &self.extra {
                if let Ok(text) = extra.lookup_single_language(l, id, args) {
                    return Some(text);
                }
            }
            if let Ok(text) = built_in().lookup_single_language(l, id, args) {
                return Some(text);
            }
        }
        None
    }

    /// Does English (the fallback of everything) have this message?
    #[must_use]
    pub fn has(&self, id: &str) -> bool {
        built_in()
            .lookup_single_language::<&str>(&self.english, id, None)
            .is_ok()
    }
}

fn english() -> LanguageIdentifier {
    fluent_templates::langid!("en")
}

/// Texts and times for one response: the catalogue in one language, the site's time zone.
#[derive(Clone, Copy)]
pub struct Tr<'a> {
    catalogue: &'a Catalogue,
    lang: &'a LanguageIdentifier,
    tz: &'a jiff::tz::TimeZone,
}

impl<'a> Tr<'a> {
    /// For `lang`, with times in `tz`.
    #[must_use]
    pub fn new(
        catalogue: &'a Catalogue,
        lang: &'a LanguageIdentifier,
        tz: &'a jiff::tz::TimeZone,
    ) -> Tr<'a> {
        Tr {
            catalogue,
            lang,
            tz,
        }
    }

    /// The language tag (`<html lang>`).
    #[must_use]
    pub fn lang(&self) -> String {
        self.lang.to_string()
    }

    /// The language.
    #[must_use]
    pub fn id(&self) -> &'a LanguageIdentifier {
        self.lang
    }

    /// The catalogue.
    #[must_use]
    pub fn catalogue(&self) -> &'a Catalogue {
        self.catalogue
    }

    /// A message without arguments.
    #[must_use]
    pub fn t(&self, id: &str) -> String {
        self.catalogue.text(self.lang, id, &[])
    }

    /// A message with one text argument.
    #[must_use]
    pub fn t1(&self, id: &str, name: &str, value: &str) -> String {
        self.catalogue
            .text(self.lang, id, &[(name, FluentValue::from(value))])
    }

    /// A message with any arguments.
    #[must_use]
    pub fn ta(&self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        self.catalogue.text(self.lang, id, args)
    }

    /// A time for people: the catalogue's `datetime-format` (strftime) in the site's zone,
    /// e.g. "1 December 2026, 22:39 JST" or "2026年12月1日 22:39 JST".
    #[must_use]
    pub fn when(&self, secs: i64) -> String {
        let Ok(t) = jiff::Timestamp::from_second(secs) else {
            return apppw::timefmt::rfc3339(secs);
        };
        let local = t.to_zoned_datetime(self.tz.clone());
        jiff::fmt::strtime::format(self.t("datetime-format"), &local)
            .unwrap_or_else(|_| apppw::timefmt::rfc3339(secs))
    }

    /// A time for machines (`<time datetime>`): RFC 3339 with the site's offset.
    #[must_use]
    pub fn iso(&self, secs: i64) -> String {
        jiff::Timestamp::from_second(secs).map_or_else(
            |_| apppw::timefmt::rfc3339(secs),
            |t| {
                jiff::fmt::strtime::format(
                    "%Y-%m-%dT%H:%M:%S%:z",
                    &t.to_zoned_datetime(self.tz.clone()),
                )
                .unwrap_or_else(|_| apppw::timefmt::rfc3339(secs))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        Catalogue::load(None, "en").unwrap()
    }

    #[test]
    fn the_language_folders_are_found() {
        let c = catalogue();
        let tags: Vec<String> = c.languages().iter().map(|l| l.id.to_string()).collect();
        assert!(
            tags.contains(&"en".to_owned()) && tags.contains(&"ja".to_owned()),
            "{tags:?}"
        );
        let ja = c
            .languages()
            .iter()
            .find(|l| l.id == fluent_templates::langid!("ja"))
            .unwrap();
        assert_eq!(ja.name, "日本語");
    }

    #[test]
    fn accept_language_is_negotiated_with_an_english_fallback() {
        let c = catalogue();
        let n = |chosen: &[&str], accept: Option<&str>| c.negotiate(chosen, accept).to_string();
        assert_eq!(n(&[], Some("ja,en-US;q=0.9,en;q=0.8")), "ja");
        assert_eq!(n(&[], Some("ja-JP")), "ja");
        assert_eq!(n(&[], Some("de-DE,de;q=0.9,en;q=0.5")), "en");
        assert_eq!(n(&[], Some("fr")), "en");
        assert_eq!(n(&[], None), "en");
        assert_eq!(n(&["ja"], Some("en")), "ja", "an explicit choice wins");
        assert_eq!(n(&["tlh", "ja"], Some("en")), "ja");
        assert_eq!(n(&["<script>"], Some("en")), "en");
        let ja_default = Catalogue::load(None, "ja").unwrap();
        assert_eq!(ja_default.negotiate(&[], Some("fr")).to_string(), "ja");
        assert!(Catalogue::load(None, "tlh").is_err());
    }

    /// Message id -> the variables it uses, for every `.ftl` file of one language folder.
    fn messages(lang: &str) -> HashMap<String, Vec<String>> {
        use fluent_syntax::ast::{Entry, Expression, InlineExpression, Pattern, PatternElement};
        fn walk(p: &Pattern<&str>, out: &mut Vec<String>) {
            for e in &p.elements {
                if let PatternElement::Placeable { expression } = e {
                    let (inline, variants) = match expression {
                        Expression::Inline(i) => (i, None),
                        Expression::Select { selector, variants } => (selector, Some(variants)),
                    };
                    if let InlineExpression::VariableReference { id } = inline {
                        out.push(id.name.to_owned());
                    }
                    for v in variants.into_iter().flatten() {
                        walk(&v.value, out);
                    }
                }
            }
        }
        let dir = format!("{}/locales/{lang}", env!("CARGO_MANIFEST_DIR"));
        let mut all = HashMap::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            let resource = fluent_syntax::parser::parse(text.as_str()).unwrap();
            for entry in resource.body {
                if let Entry::Message(m) = entry {
                    let mut vars = Vec::new();
                    if let Some(p) = &m.value {
                        walk(p, &mut vars);
                    }
                    vars.sort();
                    vars.dedup();
                    assert!(
                        all.insert(m.id.name.to_owned(), vars).is_none(),
                        "{lang}: {} twice",
                        m.id.name
                    );
                }
            }
        }
        all
    }

    #[test]
    fn every_language_has_every_english_message_with_the_same_variables() {
        let c = catalogue();
        let en = messages("en");
        assert!(en.len() > 50, "{en:?}");
        for lang in c.languages() {
            let tag = lang.id.to_string();
            let other = messages(&tag);
            for (id, vars) in &en {
                assert_eq!(other.get(id), Some(vars), "{tag}: {id}");
            }
            assert_eq!(other.len(), en.len(), "{tag} has messages English has not");
        }
        assert_eq!(
            c.text(&english(), "no-such-message", &[]),
            "no-such-message"
        );
    }

    #[test]
    fn times_are_local_and_in_the_languages_format() {
        let c = catalogue();
        let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        let ja: LanguageIdentifier = "ja".parse().unwrap();
        let en = english();
        // 2026-12-01T13:39:00Z is 22:39 in Tokyo.
        let t = 1_796_132_340;
        assert_eq!(apppw::timefmt::rfc3339(t), "2026-12-01T13:39:00Z");
        assert_eq!(Tr::new(&c, &ja, &tokyo).when(t), "2026年12月1日 22:39 JST");
        assert_eq!(
            Tr::new(&c, &en, &tokyo).when(t),
            "1 December 2026, 22:39 JST"
        );
        assert_eq!(Tr::new(&c, &en, &tokyo).iso(t), "2026-12-01T22:39:00+09:00");
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(Tr::new(&c, &en, &utc).when(t), "1 December 2026, 13:39 UTC");
    }

    #[test]
    fn an_admins_folder_adds_languages_and_changes_single_messages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("de")).unwrap();
        std::fs::write(
            dir.path().join("de/web.ftl"),
            "language-name = Deutsch\nlist-heading = Ihre App-Passwörter\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/mail.ftl"),
            "mail-deleted-subject = Gone: { $label }\n",
        )
        .unwrap();
        let c = Catalogue::load(Some(dir.path()), "en").unwrap();
        let de: LanguageIdentifier = "de".parse().unwrap();
        assert_eq!(c.negotiate(&[], Some("de-AT,de;q=0.9")), de);
        assert_eq!(c.text(&de, "list-heading", &[]), "Ihre App-Passwörter");
        assert_eq!(
            c.text(&de, "create-button", &[]),
            "Create",
            "English for the rest"
        );
        let en = english();
        assert_eq!(
            c.text(
                &en,
                "mail-deleted-subject",
                &[("label", FluentValue::from("x"))]
            ),
            "Gone: x"
        );
        assert_eq!(c.text(&en, "create-button", &[]), "Create");
        std::fs::write(dir.path().join("de/broken.ftl"), "list-heading = doppelt\n").unwrap();
        assert!(
            Catalogue::load(Some(dir.path()), "en").is_err(),
            "a message defined twice"
        );
    }
}
