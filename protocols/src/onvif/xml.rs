//! A bounded, namespace-aware XML reader producing a small element tree.
//!
//! Why our own tree instead of a serde mapping: SOAP messages from cameras and clients vary in
//! prefixes, element order and extra elements, and the only things we need are a handful of
//! values found by namespace + local name. Why bounded: the input comes from the network
//! (requests to the simulator, responses to the gateway) and must not be able to exhaust the
//! stack or the heap — depth, element count and text size are capped, and DTDs (the vehicle of
//! entity-expansion attacks) are refused outright.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Caps on what [`parse`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest input in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements in the document.
    pub max_elements: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 1024 * 1024, max_depth: 64, max_elements: 20_000, max_attributes: 64 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("document is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} elements")]
    TooManyElements(usize),
    #[error("more than {0} attributes on one element")]
    TooManyAttributes(usize),
    #[error("DTDs are not accepted")]
    Dtd,
    #[error("no root element")]
    Empty,
    #[error("content after the root element")]
    TrailingContent,
    #[error("unknown namespace prefix on <{0}>")]
    UnboundPrefix(String),
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    #[error("malformed XML: {0}")]
    Syntax(String),
}

/// One element: its namespace URI (if any), local name, attributes (local name → value;
/// namespaced attributes keep their local name only) and children. `text` is the
/// concatenated character data directly inside the element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// True if the element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    /// The first child with local name `name`, whatever its namespace.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child `{ns}name`.
    pub fn child_ns(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Follows local names down the tree.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for n in names {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    /// The trimmed text of the child reached by `names`.
    pub fn text_at(&self, names: &[&str]) -> Option<&str> {
        self.path(names).map(|e| e.text.trim())
    }

    /// An attribute by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All descendants (depth-first, self excluded) with local name `name`.
    pub fn descendants<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        std::iter::from_fn(move || {
            while let Some(e) = stack.pop() {
                stack.extend(e.children.iter().rev());
                if e.name == name {
                    return Some(e);
                }
            }
            None
        })
    }
}

fn syntax(e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax(e.to_string())
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// Parses `input` into its root element, within `limits`.
pub fn parse(input: &str, limits: Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge(input.len()));
    }
    let mut reader = NsReader::from_str(input);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(syntax)?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(XmlError::UnboundPrefix(String::from_utf8_lossy(&p).into_owned()));
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError::TooManyElements(limits.max_elements));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(syntax)?;
                    if attrs.len() >= limits.max_attributes {
                        return Err(XmlError::TooManyAttributes(limits.max_attributes));
                    }
                    let key = a.key.local_name();
                    let key = String::from_utf8_lossy(key.as_ref()).into_owned();
                    let value = a.unescape_value().map_err(syntax)?.into_owned();
                    attrs.push((key, value));
                }
                let el = Element { ns, name, attrs, children: Vec::new(), text: String::new() };
                if is_empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| syntax("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text: Cow<'_, str> = t.decode().map_err(syntax)?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(t) => {
                let text = t.decode().map_err(syntax)?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(syntax)? {
                    Some(c) => c,
                    None => {
                        let name = r.decode().map_err(syntax)?;
                        predefined_entity(&name).ok_or_else(|| XmlError::UnknownEntity(name.into_owned()))?
                    }
                };
                let mut buf = [0u8; 4];
                push_text(&mut stack, ch.encode_utf8(&mut buf))?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(syntax("unexpected end of document"));
    }
    root.ok_or(XmlError::Empty)
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        // Whitespace around the root is fine; anything else is not XML.
        None if text.trim().is_empty() => Ok(()),
        None => Err(syntax("text outside the root element")),
    }
}

/// Escapes text for an XML element or attribute value.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_text_and_entities() {
        let doc = r#"<?xml version="1.0"?>
<a:root xmlns:a="urn:a" xmlns="urn:d" x="1 &amp; 2"><child>t &lt;&#65;&gt; <![CDATA[<raw>]]></child><a:e/></a:root>"#;
        let root = parse(doc, Limits::default()).unwrap();
        assert!(root.is("urn:a", "root"));
        assert_eq!(root.attr("x"), Some("1 & 2"));
        let child = root.child("child").unwrap();
        assert_eq!(child.ns.as_deref(), Some("urn:d"));
        assert_eq!(child.text, "t <A> <raw>");
        assert!(root.child_ns("urn:a", "e").is_some());
    }

    #[test]
    fn rejects_what_it_must() {
        let l = Limits::default();
        assert!(matches!(parse("<a><b></a>", l), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<x:a/>", l), Err(XmlError::UnboundPrefix(_))));
        assert!(matches!(parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", l), Err(XmlError::Dtd)));
        assert!(matches!(parse("<a>&x;</a>", l), Err(XmlError::UnknownEntity(_))));
        assert!(matches!(parse("<a/><b/>", l), Err(XmlError::TrailingContent)));
        assert!(matches!(parse("", l), Err(XmlError::Empty)));
        assert!(parse("<a>", l).is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(matches!(parse(&deep, l), Err(XmlError::TooDeep(64))));
        let big = "<a>".to_string() + &"x".repeat(2 * 1024 * 1024) + "</a>";
        assert!(matches!(parse(&big, l), Err(XmlError::TooLarge(_))));
        let many = "<a>".to_string() + &"<b/>".repeat(30_000) + "</a>";
        assert!(matches!(parse(&many, l), Err(XmlError::TooManyElements(_))));
    }

    #[test]
    fn escape_round_trips() {
        let s = "a<b>&\"c'";
        let doc = format!("<a v=\"{0}\">{0}</a>", escape(s));
        let root = parse(&doc, Limits::default()).unwrap();
        assert_eq!(root.text, s);
        assert_eq!(root.attr("v"), Some(s));
    }
}
