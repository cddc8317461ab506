//! JSON Schema of the configuration language, generated from the language
//! table. It describes the JSON/Nix form of a config that `nix/kdl.nix`
//! renders to KDL: a node with one value is that value; a node with only
//! repeated arguments is a list; any other node is an object with `_args`,
//! `_props` and one key per child; a repeatable node is a list of those.

use serde_json::{Map, Value, json};

use super::language::ROOT;
use super::schema::{ArgSpec, NodeSpec, Ty};

pub fn config_schema() -> String {
    let mut root = node_object(&ROOT);
    if let Value::Object(m) = &mut root {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert("title".into(), json!("mailc configuration"));
    }
    let mut s = serde_json::to_string_pretty(&root).unwrap_or_default();
    s.push('\n');
    s
}

fn ty_schema(ty: Ty, nullable: bool) -> Value {
    let mut v = match ty {
        Ty::Str | Ty::Path => json!({"type": "string"}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::Size => {
            json!({"type": ["string", "integer"], "description": "bytes, or a size such as \"25MiB\""})
        }
        Ty::Duration => json!({"type": "string", "pattern": "^([0-9]+[smhdw])+$"}),
        Ty::Choice(words) => json!({"type": "string", "enum": words}),
        Ty::SocketAddr => json!({"type": "string", "description": "IP:PORT"}),
        Ty::Network => json!({"type": "string", "description": "IP or IP/PREFIX"}),
        Ty::Ip => json!({"type": "string", "description": "IPv4 or IPv6 address"}),
        Ty::Score => json!({"type": "number", "minimum": -1000, "maximum": 1000}),
    };
    if nullable && let Value::Object(m) = &mut v {
        let t = m.remove("type").unwrap_or(json!("string"));
        let mut types = match t {
            Value::Array(a) => a,
            other => vec![other],
        };
        types.push(json!("null"));
        m.insert("type".into(), Value::Array(types));
    }
    v
}

fn arg_schema(a: &ArgSpec) -> Value {
    let mut v = ty_schema(a.ty, a.nullable);
    if let Value::Object(m) = &mut v
        && !a.doc.is_empty()
    {
        m.entry("description").or_insert(json!(a.doc));
    }
    v
}

/// The schema of one occurrence of a node.
fn node_object(spec: &NodeSpec) -> Value {
    let simple_value = spec.props.is_empty()
        && spec.children.is_empty()
        && spec.args.fixed.len() == 1
        && spec.args.rest.is_none();
    if simple_value {
        let mut v = arg_schema(&spec.args.fixed[0]);
        if let Value::Object(m) = &mut v {
            m.insert("description".into(), json!(spec.doc));
        }
        return v;
    }
    let simple_list =
        spec.props.is_empty() && spec.children.is_empty() && spec.args.fixed.is_empty();
    if let (true, Some((a, min))) = (simple_list, spec.args.rest) {
        return json!({
            "description": spec.doc,
            "type": "array",
            "items": arg_schema(&a),
            "minItems": min,
        });
    }
    let mut props = Map::new();
    let mut required: Vec<Value> = Vec::new();
    if spec.args.fixed.len() + usize::from(spec.args.rest.is_some()) > 0 {
        props.insert("_args".into(), args_schema(spec));
        if spec.args.min() > 0 {
            required.push(json!("_args"));
        }
    }
    if !spec.props.is_empty() {
        props.insert("_props".into(), props_schema(spec));
        if spec.props.iter().any(|p| p.required) {
            required.push(json!("_props"));
        }
    }
    for child in spec.children {
        let one = node_object(child);
        let v = if child.repeat {
            json!({"anyOf": [one, {"type": "array", "items": one}]})
        } else {
            one
        };
        props.insert(child.name.into(), v);
        if child.required {
            required.push(json!(child.name));
        }
    }
    json!({
        "description": spec.doc,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// The positional arguments, as an array under `_args`.
fn args_schema(spec: &NodeSpec) -> Value {
    let prefix: Vec<Value> = spec.args.fixed.iter().map(arg_schema).collect();
    let items = match spec.args.rest {
        Some((a, _)) => arg_schema(&a),
        None => json!(false),
    };
    json!({
        "type": "array",
        "prefixItems": prefix,
        "minItems": spec.args.min(),
        "items": items,
    })
}

/// The `key=value` properties, as an object under `_props`.
fn props_schema(spec: &NodeSpec) -> Value {
    let mut p = Map::new();
    let mut req: Vec<Value> = Vec::new();
    for prop in spec.props {
        let mut v = ty_schema(prop.ty, false);
        if let Value::Object(m) = &mut v {
            m.insert("description".into(), json!(prop.doc));
        }
        p.insert(prop.name.into(), v);
        if prop.required {
            req.push(json!(prop.name));
        }
    }
    json!({"type": "object", "properties": p, "required": req, "additionalProperties": false})
}
