//! Envoy's protoc-gen-validate (PGV) rules, enforced generically on a decoded config.
//!
//! Envoy rejects a config that breaks a `(validate.rules)` annotation of its schema
//! ("port_value must be at most 65535"), and so must Courier. Rather than hand-copy
//! those rules, this module reads them from the descriptor pool at run time — each
//! field's `validate.rules`, each oneof's `validate.required`, each message's
//! `validate.disabled`/`validate.ignored` — and applies them as PGV's generated code
//! does, recursing into messages, lists, maps and `Any` payloads. Error reasons use
//! PGV's wording; the location is the field path the user wrote.
//!
//! Not checked: `pattern` (no regex engine), `map.no_sparse` (cannot occur here) and
//! timestamp rules other than `required` (Courier accepts no timestamps).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::validate::{
    field_rules::Type, string_rules::WellKnown, AnyRules, BytesRules, DurationRules, EnumRules, FieldRules, KnownRegex,
    MapRules, RepeatedRules, StringRules,
};
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor, OneofDescriptor,
    ReflectMessage, Value,
};

use super::{descriptor, ConfigError, FieldPath};
use crate::common::fnv::FnvHashMap;

/// Checks `msg` and everything under it against Envoy's validation rules, returning
/// every violation (`ConfigError::several`). `path` is where `msg` sits in the config.
pub fn validate(msg: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let desc = msg.descriptor();
    if desc.full_name() == "google.protobuf.Any" {
        return validate_any_payload(msg, path);
    }
    let plan = plan(&desc, path)?;
    if plan.skip {
        return Ok(());
    }
    // Each field's violations are kept and the walk goes on to its siblings.
    let mut errors = Vec::new();
    for f in &plan.fields {
        let present = msg.has_field(&f.field);
        // proto3 `optional` fields are only checked when set; an unset field without
        // rules has nothing to check (its default value breaks no rule).
        if !present && (f.optional || f.rules.is_none()) {
            continue;
        }
        path.push_field(f.field.name());
        errors.extend(check_field(msg, f, present, path).err());
        path.pop();
    }
    for oneof in &plan.oneofs {
        match oneof.fields.iter().find(|f| msg.has_field(&f.field)) {
            Some(f) => {
                path.push_field(f.field.name());
                errors.extend(check_field(msg, f, true, path).err());
                path.pop();
            }
            None if oneof.required => {
                let names: Vec<String> = oneof.fields.iter().map(|f| format!("'{}'", f.field.name())).collect();
                errors.push(path.error(format!("exactly one of {} must be set", names.join(", "))));
            }
            None => {}
        }
    }
    ConfigError::all(errors)
}

/// Validates the message packed in an `Any`, at the `Any`'s own path (so errors read
/// `typed_config.stat_prefix`). Unknown types are left to `supported::check`.
fn validate_any_payload(any: &DynamicMessage, path: &mut FieldPath) -> Result<(), ConfigError> {
    let url = match any.get_field_by_name("type_url").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => return Ok(()),
    };
    let Some(desc) = descriptor::message(descriptor::type_name(&url)) else {
        return Ok(());
    };
    let bytes = match any.get_field_by_name("value").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let inner = DynamicMessage::decode(desc, bytes).map_err(|e| path.error(format!("cannot decode '{url}': {e}")))?;
    validate(&inner, path)
}

// ---------------------------------------------------------------------------------
// Rules per message type, read from the descriptors once and cached.

/// What to check on messages of one type.
struct Plan {
    /// The type this plan is for: a plan only applies to messages of its own pool.
    message: MessageDescriptor,
    /// `validate.disabled` or `validate.ignored`: nothing in the message is checked.
    skip: bool,
    /// Fields outside real oneofs, in declaration order.
    fields: Vec<FieldPlan>,
    /// Real (non-synthetic) oneofs, in declaration order.
    oneofs: Vec<OneofPlan>,
}

struct FieldPlan {
    field: FieldDescriptor,
    /// The field's type and shape, read from the descriptor once rather than for
    /// every message checked.
    kind: Kind,
    shape: Shape,
    /// A proto3 `optional` field (in a synthetic oneof): checked only when present.
    optional: bool,
    rules: Option<FieldRules>,
}

/// How a field holds its values.
enum Shape {
    Single,
    List,
    /// A map, with the kinds of its keys and values.
    Map(Kind, Kind),
}

impl FieldPlan {
    fn new(field: FieldDescriptor, optional: bool, rules: Option<FieldRules>) -> Self {
        let kind = field.kind();
        let shape = match &kind {
            Kind::Message(entry) if field.is_map() => {
                Shape::Map(entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind())
            }
            _ if field.is_list() => Shape::List,
            _ => Shape::Single,
        };
        FieldPlan { field, kind, shape, optional, rules }
    }
}

struct OneofPlan {
    required: bool,
    fields: Vec<FieldPlan>,
}

/// Plans by message, keyed by the address of the message's full name in its pool:
/// a plan is looked up for every message of a config, and an address hashes in a
/// few dozen instructions where the name (SipHash over some 40 bytes) took hundreds.
/// Config messages come from `descriptor::pool()`; a plan made from an earlier pool
/// (before `descriptor::release`) is made again, even if the address is reused.
static PLANS: Mutex<Option<Plans>> = Mutex::new(None);

type Plans = FnvHashMap<usize, Arc<Plan>>;

/// The key of `desc` in `PLANS`.
fn plan_key(desc: &MessageDescriptor) -> usize {
    desc.full_name().as_ptr() as usize
}

/// The cached plan for `desc`.
fn plan(desc: &MessageDescriptor, path: &FieldPath) -> Result<Arc<Plan>, ConfigError> {
    let key = plan_key(desc);
    if let Some(p) = PLANS.lock().unwrap_or_else(PoisonError::into_inner).as_ref().and_then(|plans| plans.get(&key)) {
        if p.message == *desc {
            return Ok(p.clone());
        }
    }
    let built = Arc::new(build_plan(desc).map_err(|e| path.error(format!("internal: {e}")))?);
    PLANS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(Default::default)
        .insert(key, built.clone());
    Ok(built)
}

/// Drops every cached plan, and with them their hold on the descriptor pool.
pub fn forget_plans() {
    *PLANS.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

fn build_plan(desc: &MessageDescriptor) -> Result<Plan, String> {
    let pool = desc.parent_pool();
    let rules_ext = pool.get_extension_by_name("validate.rules");
    let required_ext = pool.get_extension_by_name("validate.required");
    let message_opts = desc.options();
    let skip = bool_option(&message_opts, pool.get_extension_by_name("validate.disabled").as_ref())
        || bool_option(&message_opts, pool.get_extension_by_name("validate.ignored").as_ref());

    let mut oneofs: Vec<(OneofDescriptor, OneofPlan)> = desc
        .oneofs()
        .filter(|o| !o.is_synthetic())
        .map(|o| {
            let required = bool_option(&o.options(), required_ext.as_ref());
            (o, OneofPlan { required, fields: Vec::new() })
        })
        .collect();
    let mut fields = Vec::new();
    // `descriptor_proto().field` is in declaration order (`desc.fields()` is by number).
    for proto in &desc.descriptor_proto().field {
        let number = u32::try_from(proto.number()).map_err(|_| format!("bad field number in {}", desc.full_name()))?;
        let field =
            desc.get_field(number).ok_or_else(|| format!("field {number} of {} not found", desc.full_name()))?;
        let rules = field_rules(&field, rules_ext.as_ref())?;
        match field.containing_oneof() {
            Some(oneof) if !oneof.is_synthetic() => {
                let (_, plan) = oneofs
                    .iter_mut()
                    .find(|(o, _)| *o == oneof)
                    .ok_or_else(|| format!("oneof {} not found", oneof.full_name()))?;
                plan.fields.push(FieldPlan::new(field, false, rules));
            }
            synthetic => fields.push(FieldPlan::new(field, synthetic.is_some(), rules)),
        }
    }
    Ok(Plan { message: desc.clone(), skip, fields, oneofs: oneofs.into_iter().map(|(_, o)| o).collect() })
}

/// A `bool` option extension (`validate.disabled`, `validate.required`): true only if set to true.
fn bool_option(opts: &DynamicMessage, ext: Option<&ExtensionDescriptor>) -> bool {
    ext.filter(|ext| opts.has_extension(ext)).is_some_and(|ext| opts.get_extension(ext).as_bool() == Some(true))
}

/// The field's `(validate.rules)`, as the typed PGV message.
fn field_rules(field: &FieldDescriptor, ext: Option<&ExtensionDescriptor>) -> Result<Option<FieldRules>, String> {
    let Some(ext) = ext else { return Ok(None) };
    let opts = field.options();
    if !opts.has_extension(ext) {
        return Ok(None);
    }
    match opts.get_extension(ext).as_message() {
        Some(m) => m
            .transcode_to::<FieldRules>()
            .map(Some)
            .map_err(|e| format!("invalid validation rules on {}: {e}", field.full_name())),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------
// Fields.

/// One field of `msg` (`present`: whether it is set), by the field's shape.
fn check_field(msg: &DynamicMessage, f: &FieldPlan, present: bool, path: &mut FieldPath) -> Result<(), ConfigError> {
    let value = msg.get_field(&f.field);
    let type_rules = f.rules.as_ref().and_then(|r| r.r#type.as_ref());
    match &f.shape {
        Shape::Map(key_kind, value_kind) => {
            let empty = HashMap::new();
            let map = value.as_map().unwrap_or(&empty);
            let rules = match type_rules {
                Some(Type::Map(m)) => Some(m.as_ref()),
                _ => None,
            };
            check_map(key_kind, value_kind, map, rules, path)
        }
        Shape::List => {
            let rules = match type_rules {
                Some(Type::Repeated(r)) => Some(r.as_ref()),
                _ => None,
            };
            check_list(&f.kind, value.as_list().unwrap_or(&[]), rules, path)
        }
        Shape::Single => check_value(&f.kind, &value, present, f.rules.as_ref(), path),
    }
}

/// One value (a singular field, a list item or a map value) of type `kind`.
fn check_value(
    kind: &Kind,
    value: &Value,
    present: bool,
    rules: Option<&FieldRules>,
    path: &mut FieldPath,
) -> Result<(), ConfigError> {
    match kind {
        Kind::Message(desc) => check_message(desc, value.as_message().filter(|_| present), rules, path),
        _ => match rules.and_then(|r| r.r#type.as_ref()) {
            Some(t) => check_scalar(kind, value, t, path),
            None => Ok(()),
        },
    }
}

/// A message-typed value (`None` when unset): presence rules, the well-known types'
/// rules, then the message's own rules unless `message.skip`.
fn check_message(
    desc: &MessageDescriptor,
    msg: Option<&DynamicMessage>,
    rules: Option<&FieldRules>,
    path: &mut FieldPath,
) -> Result<(), ConfigError> {
    let message_rules = rules.and_then(|r| r.message.as_ref());
    let type_rules = rules.and_then(|r| r.r#type.as_ref());
    let Some(msg) = msg else {
        let required = message_rules.is_some_and(|m| m.required())
            || match type_rules {
                Some(Type::Duration(d)) => d.required(),
                Some(Type::Any(a)) => a.required(),
                Some(Type::Timestamp(t)) => t.required(),
                _ => false,
            };
        return if required { Err(path.error("value is required")) } else { Ok(()) };
    };
    match (desc.full_name(), type_rules) {
        ("google.protobuf.Duration", Some(Type::Duration(r))) => check_duration(msg, r, path)?,
        ("google.protobuf.Any", Some(Type::Any(r))) => check_any(msg, r, path)?,
        (name, Some(t)) if is_wrapper(name) => {
            // PGV applies a scalar rule on a wrapper to the wrapped value.
            if let Some(inner) = desc.get_field_by_name("value") {
                check_scalar(&inner.kind(), &msg.get_field(&inner), t, path)?;
            }
        }
        _ => {}
    }
    if message_rules.is_some_and(|m| m.skip()) {
        return Ok(());
    }
    validate(msg, path)
}

fn is_wrapper(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

fn check_list(
    kind: &Kind,
    items: &[Value],
    rules: Option<&RepeatedRules>,
    path: &mut FieldPath,
) -> Result<(), ConfigError> {
    if let Some(r) = rules {
        if r.ignore_empty() && items.is_empty() {
            return Ok(());
        }
        let n = items.len() as u64;
        match (r.min_items, r.max_items) {
            (Some(min), Some(max)) if min == max && n != min => {
                return Err(path.error(format!("value must contain exactly {min} item(s)")));
            }
            (Some(min), _) if n < min => return Err(path.error(format!("value must contain at least {min} item(s)"))),
            (_, Some(max)) if n > max => {
                return Err(path.error(format!("value must contain no more than {max} item(s)")));
            }
            _ => {}
        }
    }
    let unique = rules.is_some_and(|r| r.unique());
    let item_rules = rules.and_then(|r| r.items.as_deref());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        path.push_index(i);
        if unique && items[..i].contains(item) {
            errors.push(path.error("repeated value must contain unique items"));
        } else {
            errors.extend(check_value(kind, item, true, item_rules, path).err());
        }
        path.pop();
    }
    ConfigError::all(errors)
}

fn check_map(
    key_kind: &Kind,
    value_kind: &Kind,
    map: &HashMap<MapKey, Value>,
    rules: Option<&MapRules>,
    path: &mut FieldPath,
) -> Result<(), ConfigError> {
    if let Some(r) = rules {
        if r.ignore_empty() && map.is_empty() {
            return Ok(());
        }
        let n = map.len() as u64;
        match (r.min_pairs, r.max_pairs) {
            (Some(min), Some(max)) if min == max && n != min => {
                return Err(path.error(format!("value must contain exactly {min} pair(s)")));
            }
            (Some(min), _) if n < min => return Err(path.error(format!("value must contain at least {min} pair(s)"))),
            (_, Some(max)) if n > max => {
                return Err(path.error(format!("value must contain no more than {max} pair(s)")));
            }
            _ => {}
        }
    }
    let key_rules = rules.and_then(|r| r.keys.as_deref()).and_then(|k| k.r#type.as_ref());
    let value_rules = rules.and_then(|r| r.values.as_deref());
    // Sorted, so that the first error reported does not depend on hash order.
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut errors = Vec::new();
    for (key, value) in entries {
        path.push_key(&key_text(key));
        let key_checked = match key_rules {
            Some(t) => check_scalar(key_kind, &Value::from(key.clone()), t, path),
            None => Ok(()),
        };
        errors.extend(key_checked.and_then(|()| check_value(value_kind, value, true, value_rules, path)).err());
        path.pop();
    }
    ConfigError::all(errors)
}

/// A map key as a field path shows it.
pub(super) fn key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

// ---------------------------------------------------------------------------------
// Scalars.

/// `Bounds` from any of PGV's numeric rule messages (they share field names).
macro_rules! bounds {
    ($r:expr) => {
        Bounds {
            konst: $r.r#const,
            lt: $r.lt,
            lte: $r.lte,
            gt: $r.gt,
            gte: $r.gte,
            within: $r.r#in.clone(),
            not_in: $r.not_in.clone(),
            ignore_empty: $r.ignore_empty(),
        }
    };
}

/// Applies a scalar rule to a value. A rule of another type than the value (which
/// PGV refuses at generation time) is ignored.
fn check_scalar(kind: &Kind, value: &Value, rules: &Type, path: &FieldPath) -> Result<(), ConfigError> {
    let failure = match (rules, value) {
        (Type::Float(r), Value::F32(v)) => bounds!(r).check(*v),
        (Type::Double(r), Value::F64(v)) => bounds!(r).check(*v),
        (Type::Int32(r), Value::I32(v)) => bounds!(r).check(*v),
        (Type::Sint32(r), Value::I32(v)) => bounds!(r).check(*v),
        (Type::Sfixed32(r), Value::I32(v)) => bounds!(r).check(*v),
        (Type::Int64(r), Value::I64(v)) => bounds!(r).check(*v),
        (Type::Sint64(r), Value::I64(v)) => bounds!(r).check(*v),
        (Type::Sfixed64(r), Value::I64(v)) => bounds!(r).check(*v),
        (Type::Uint32(r), Value::U32(v)) => bounds!(r).check(*v),
        (Type::Fixed32(r), Value::U32(v)) => bounds!(r).check(*v),
        (Type::Uint64(r), Value::U64(v)) => bounds!(r).check(*v),
        (Type::Fixed64(r), Value::U64(v)) => bounds!(r).check(*v),
        (Type::Bool(r), Value::Bool(v)) => match r.r#const {
            Some(c) if c != *v => Some(format!("value must equal {c}")),
            _ => None,
        },
        (Type::String(r), Value::String(s)) => check_string(s, r),
        (Type::Bytes(r), Value::Bytes(b)) => check_bytes(b, r),
        (Type::Enum(r), Value::EnumNumber(n)) => check_enum(kind, *n, r),
        _ => None,
    };
    match failure {
        Some(reason) => Err(path.error(reason)),
        None => Ok(()),
    }
}

/// The numeric rules shared by every number type and Duration.
struct Bounds<T> {
    konst: Option<T>,
    lt: Option<T>,
    lte: Option<T>,
    gt: Option<T>,
    gte: Option<T>,
    within: Vec<T>,
    not_in: Vec<T>,
    ignore_empty: bool,
}

impl<T: Copy + PartialOrd + Default + fmt::Display> Bounds<T> {
    /// PGV's order: const, range, in, not_in. Returns the reason of the failure.
    fn check(&self, v: T) -> Option<String> {
        if self.ignore_empty && v == T::default() {
            return None;
        }
        if let Some(c) = self.konst {
            if v != c {
                return Some(format!("value must equal {c}"));
            }
        }
        if let Some(reason) = self.range(v) {
            return Some(reason);
        }
        if !self.within.is_empty() && !self.within.contains(&v) {
            return Some(format!("value must be in list {}", list(&self.within)));
        }
        if self.not_in.contains(&v) {
            return Some(format!("value must not be in list {}", list(&self.not_in)));
        }
        None
    }

    /// PGV's range template: a pair of bounds is an inside range when the upper one is
    /// above the lower one, and an excluded (outside) range otherwise.
    fn range(&self, v: T) -> Option<String> {
        let fail = |bad: bool, reason: String| bad.then_some(reason);
        match (self.lt, self.lte, self.gt, self.gte) {
            (Some(lt), _, Some(gt), _) if lt > gt => {
                fail(v <= gt || v >= lt, format!("value must be inside range ({gt}, {lt})"))
            }
            (Some(lt), _, Some(gt), _) => fail(v >= lt && v <= gt, format!("value must be outside range [{lt}, {gt}]")),
            (Some(lt), _, _, Some(gte)) if lt > gte => {
                fail(v < gte || v >= lt, format!("value must be inside range [{gte}, {lt})"))
            }
            (Some(lt), _, _, Some(gte)) => {
                fail(v >= lt && v < gte, format!("value must be outside range [{lt}, {gte})"))
            }
            (Some(lt), ..) => fail(v >= lt, format!("value must be less than {lt}")),
            (_, Some(lte), Some(gt), _) if lte > gt => {
                fail(v <= gt || v > lte, format!("value must be inside range ({gt}, {lte}]"))
            }
            (_, Some(lte), Some(gt), _) => {
                fail(v > lte && v <= gt, format!("value must be outside range ({lte}, {gt}]"))
            }
            (_, Some(lte), _, Some(gte)) if lte > gte => {
                fail(v < gte || v > lte, format!("value must be inside range [{gte}, {lte}]"))
            }
            (_, Some(lte), _, Some(gte)) => {
                fail(v > lte && v < gte, format!("value must be outside range ({lte}, {gte})"))
            }
            (_, Some(lte), ..) => fail(v > lte, format!("value must be less than or equal to {lte}")),
            (_, _, Some(gt), _) => fail(v <= gt, format!("value must be greater than {gt}")),
            (_, _, _, Some(gte)) => fail(v < gte, format!("value must be greater than or equal to {gte}")),
            _ => None,
        }
    }
}

/// A list as PGV (Go's `fmt`) prints it: `[a b c]`.
fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(" "))
}

fn check_string(s: &str, r: &StringRules) -> Option<String> {
    if r.ignore_empty() && s.is_empty() {
        return None;
    }
    if let Some(c) = &r.r#const {
        if s != c {
            return Some(format!("value must equal {c}"));
        }
    }
    if !r.r#in.is_empty() && !r.r#in.iter().any(|x| x == s) {
        return Some(format!("value must be in list {}", list(&r.r#in)));
    }
    if r.not_in.iter().any(|x| x == s) {
        return Some(format!("value must not be in list {}", list(&r.not_in)));
    }
    let runes = s.chars().count() as u64;
    if let Some(reason) = length(runes, r.len, r.min_len, r.max_len, "runes") {
        return Some(reason);
    }
    if let Some(reason) = length(s.len() as u64, r.len_bytes, r.min_bytes, r.max_bytes, "bytes") {
        return Some(reason);
    }
    // `pattern` needs a regex engine; it is not checked.
    if let Some(p) = r.prefix.as_deref().filter(|p| !s.starts_with(p)) {
        return Some(format!("value does not have prefix {p:?}"));
    }
    if let Some(p) = r.suffix.as_deref().filter(|p| !s.ends_with(p)) {
        return Some(format!("value does not have suffix {p:?}"));
    }
    if let Some(p) = r.contains.as_deref().filter(|p| !s.contains(p)) {
        return Some(format!("value does not contain substring {p:?}"));
    }
    if let Some(p) = r.not_contains.as_deref().filter(|p| s.contains(p)) {
        return Some(format!("value contains substring {p:?}"));
    }
    match &r.well_known {
        Some(WellKnown::Email(true)) if !is_email(s) => Some("value must be a valid email address".into()),
        Some(WellKnown::Hostname(true)) if !is_hostname(s) => Some("value must be a valid hostname".into()),
        Some(WellKnown::Ip(true)) if s.parse::<std::net::IpAddr>().is_err() => {
            Some("value must be a valid IP address".into())
        }
        Some(WellKnown::Ipv4(true)) if s.parse::<std::net::Ipv4Addr>().is_err() => {
            Some("value must be a valid IPv4 address".into())
        }
        Some(WellKnown::Ipv6(true)) if s.parse::<std::net::Ipv6Addr>().is_err() => {
            Some("value must be a valid IPv6 address".into())
        }
        Some(WellKnown::Uri(true)) if !is_uri(s) => Some("value must be a valid URI".into()),
        Some(WellKnown::UriRef(true)) if !is_uri_ref(s) => Some("value must be a valid URI".into()),
        Some(WellKnown::Address(true)) if s.parse::<std::net::IpAddr>().is_err() && !is_hostname(s) => {
            Some("value must be a valid hostname, or ip address".into())
        }
        Some(WellKnown::Uuid(true)) if !is_uuid(s) => Some("value must be a valid UUID".into()),
        Some(WellKnown::WellKnownRegex(n)) => check_known_regex(s, *n, r.strict()),
        _ => None,
    }
}

/// PGV's length rules: exact, or min/max (one message when they are equal).
fn length(n: u64, exact: Option<u64>, min: Option<u64>, max: Option<u64>, unit: &str) -> Option<String> {
    match (exact, min, max) {
        (Some(len), ..) => (n != len).then(|| format!("value length must be {len} {unit}")),
        (None, Some(min), Some(max)) if min == max => (n != min).then(|| format!("value length must be {min} {unit}")),
        (None, Some(min), Some(max)) => {
            (n < min || n > max).then(|| format!("value length must be between {min} and {max} {unit}, inclusive"))
        }
        (None, Some(min), None) => (n < min).then(|| format!("value length must be at least {min} {unit}")),
        (None, None, Some(max)) => (n > max).then(|| format!("value length must be at most {max} {unit}")),
        (None, None, None) => None,
    }
}

/// The header regexes of PGV, without a regex engine. Strict header names are
/// `^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$` (RFC 7230 tokens, plus ',' which the `+-.`
/// range in PGV's class lets through); strict values exclude control characters but
/// tab; non-strict (`strict: false`) only excludes NUL, CR and LF.
fn check_known_regex(s: &str, which: i32, strict: bool) -> Option<String> {
    let (ok, pattern) = match KnownRegex::try_from(which) {
        Ok(KnownRegex::HttpHeaderName) if strict => {
            let name = s.strip_prefix(':').unwrap_or(s);
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+,-.^_|~`".contains(c);
            (!name.is_empty() && name.chars().all(token), r"^:?[0-9a-zA-Z!#$%&'*+-.^_|~`]+$")
        }
        Ok(KnownRegex::HttpHeaderValue) if strict => {
            (!s.chars().any(|c| c != '\t' && (c < ' ' || c == '\x7f')), r"^[^\x00-\x08\n-\x1f\x7f]*$")
        }
        Ok(KnownRegex::HttpHeaderName | KnownRegex::HttpHeaderValue) => {
            (!s.contains(['\0', '\n', '\r']), r"^[^\x00\n\r]*$")
        }
        _ => return None,
    };
    (!ok).then(|| format!("value does not match regex pattern \"{pattern}\""))
}

/// A DNS name as PGV's `hostname` rule accepts it (a trailing dot is allowed).
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `local@host` with a non-empty local part of at most 64 bytes and a valid host
/// (an approximation of PGV's `net/mail` parsing).
fn is_email(s: &str) -> bool {
    let addr = match (s.find('<'), s.strip_suffix('>')) {
        (Some(i), Some(inner)) => &inner[i + 1..],
        _ => s,
    };
    match addr.rsplit_once('@') {
        Some((local, host)) => {
            !local.is_empty()
                && local.len() <= 64
                && !local.chars().any(|c| c.is_whitespace() || c.is_control())
                && is_hostname(host)
        }
        None => false,
    }
}

/// An absolute URI: a scheme (`[a-zA-Z][a-zA-Z0-9+.-]*:`) and no spaces or controls.
fn is_uri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        && is_uri_ref(s)
}

/// A URI reference: approximated as text without spaces or control characters.
fn is_uri_ref(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_bytes(b: &[u8], r: &BytesRules) -> Option<String> {
    use envoy_types::pb::validate::bytes_rules::WellKnown as BytesWellKnown;
    if r.ignore_empty() && b.is_empty() {
        return None;
    }
    let shown = |v: &[u8]| format!("\"{}\"", v.escape_ascii());
    if let Some(c) = r.r#const.as_deref().filter(|c| *c != b) {
        return Some(format!("value must equal {}", shown(c)));
    }
    if !r.r#in.is_empty() && !r.r#in.iter().any(|x| x.as_slice() == b) {
        let items: Vec<String> = r.r#in.iter().map(|x| shown(x)).collect();
        return Some(format!("value must be in list {}", list(&items)));
    }
    if r.not_in.iter().any(|x| x.as_slice() == b) {
        let items: Vec<String> = r.not_in.iter().map(|x| shown(x)).collect();
        return Some(format!("value must not be in list {}", list(&items)));
    }
    if let Some(reason) = length(b.len() as u64, r.len, r.min_len, r.max_len, "bytes") {
        return Some(reason);
    }
    // `pattern` needs a regex engine; it is not checked.
    if let Some(p) = r.prefix.as_deref().filter(|p| !b.starts_with(p)) {
        return Some(format!("value does not have prefix {}", shown(p)));
    }
    if let Some(p) = r.suffix.as_deref().filter(|p| !b.ends_with(p)) {
        return Some(format!("value does not have suffix {}", shown(p)));
    }
    if let Some(p) = r.contains.as_deref().filter(|p| !p.is_empty() && !b.windows(p.len()).any(|w| w == *p)) {
        return Some(format!("value does not contain {}", shown(p)));
    }
    match r.well_known {
        Some(BytesWellKnown::Ip(true)) if b.len() != 4 && b.len() != 16 => {
            Some("value must be a valid IP address".into())
        }
        Some(BytesWellKnown::Ipv4(true)) if b.len() != 4 => Some("value must be a valid IPv4 address".into()),
        Some(BytesWellKnown::Ipv6(true)) if b.len() != 16 => Some("value must be a valid IPv6 address".into()),
        _ => None,
    }
}

fn check_enum(kind: &Kind, n: i32, r: &EnumRules) -> Option<String> {
    if let Some(c) = r.r#const.filter(|c| *c != n) {
        return Some(format!("value must equal {c}"));
    }
    if r.defined_only() {
        if let Kind::Enum(e) = kind {
            if e.get_value(n).is_none() {
                return Some("value must be one of the defined enum values".into());
            }
        }
    }
    if !r.r#in.is_empty() && !r.r#in.contains(&n) {
        return Some(format!("value must be in list {}", list(&r.r#in)));
    }
    if r.not_in.contains(&n) {
        return Some(format!("value must not be in list {}", list(&r.not_in)));
    }
    None
}

// ---------------------------------------------------------------------------------
// Well-known message types.

/// A duration as a count of nanoseconds, displayed as proto3-JSON writes it (`1.5s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
struct Nanos(i128);

impl Nanos {
    const PER_SECOND: i128 = 1_000_000_000;

    fn new(seconds: i64, nanos: i32) -> Self {
        Nanos(i128::from(seconds) * Self::PER_SECOND + i128::from(nanos))
    }

    fn of(d: &envoy_types::pb::google::protobuf::Duration) -> Self {
        Self::new(d.seconds, d.nanos)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (secs, frac) = (abs / Self::PER_SECOND as u128, abs % Self::PER_SECOND as u128);
        if frac == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{secs}.{}s", digits.trim_end_matches('0'))
        }
    }
}

fn check_duration(msg: &DynamicMessage, r: &DurationRules, path: &FieldPath) -> Result<(), ConfigError> {
    let seconds = msg.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
    let nanos = msg.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
    // google.protobuf.Duration's own constraints (Go's `ptypes.Duration`).
    let valid = seconds.abs() <= 315_576_000_000
        && nanos.abs() <= 999_999_999
        && !(seconds > 0 && nanos < 0)
        && !(seconds < 0 && nanos > 0);
    if !valid {
        return Err(path.error("value is not a valid duration"));
    }
    let bounds = Bounds {
        konst: r.r#const.as_ref().map(Nanos::of),
        lt: r.lt.as_ref().map(Nanos::of),
        lte: r.lte.as_ref().map(Nanos::of),
        gt: r.gt.as_ref().map(Nanos::of),
        gte: r.gte.as_ref().map(Nanos::of),
        within: r.r#in.iter().map(Nanos::of).collect(),
        not_in: r.not_in.iter().map(Nanos::of).collect(),
        ignore_empty: false,
    };
    match bounds.check(Nanos::new(seconds, nanos)) {
        Some(reason) => Err(path.error(reason)),
        None => Ok(()),
    }
}

fn check_any(any: &DynamicMessage, r: &AnyRules, path: &FieldPath) -> Result<(), ConfigError> {
    let url = any.get_field_by_name("type_url").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    if !r.r#in.is_empty() && !r.r#in.contains(&url) {
        return Err(path.error(format!("type URL must be in list {}", list(&r.r#in))));
    }
    if r.not_in.contains(&url) {
        return Err(path.error(format!("type URL must not be in list {}", list(&r.not_in))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::proto_json;
    use serde_json::{json, Value as Json};

    /// Decodes `json` as `type_name` and validates it; the error as `path: reason`.
    fn check(type_name: &str, json: Json) -> Result<(), String> {
        let desc = descriptor::message(type_name).ok_or_else(|| format!("{type_name} not in the schema"))?;
        let msg = proto_json::decode(&desc, &json, &mut FieldPath::new()).map_err(|e| format!("decode: {e}"))?;
        validate(&msg, &mut FieldPath::new()).map_err(|e| e.to_string())
    }

    const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
    const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    const TCP_PROXY_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

    fn socket_address(port: u32) -> Json {
        json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
    }

    fn listener(tcp_proxy: Json) -> Json {
        let mut typed_config = tcp_proxy;
        typed_config["@type"] = json!(TCP_PROXY_URL);
        json!({
            "name": "l",
            "address": socket_address(10000),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": typed_config}]}],
        })
    }

    #[test]
    fn valid_minimal_cluster_passes() {
        assert_eq!(check(CLUSTER, json!({"name": "c", "connect_timeout": "0.25s"})), Ok(()));
    }

    #[test]
    fn valid_full_cluster_passes() {
        let cluster = json!({
            "name": "backend",
            "type": "STATIC",
            "lb_policy": "ROUND_ROBIN",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "backend",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(8080)}}]}],
            },
        });
        assert_eq!(check(CLUSTER, cluster), Ok(()));
    }

    #[test]
    fn cluster_with_empty_name_fails() {
        assert_eq!(
            check(CLUSTER, json!({"connect_timeout": "1s"})),
            Err("name: value length must be at least 1 runes".into())
        );
    }

    #[test]
    fn zero_connect_timeout_fails() {
        assert_eq!(
            check(CLUSTER, json!({"name": "c", "connect_timeout": "0s"})),
            Err("connect_timeout: value must be greater than 0s".into())
        );
    }

    #[test]
    fn port_above_65535_fails() {
        assert_eq!(
            check("envoy.config.core.v3.SocketAddress", json!({"address": "1.2.3.4", "port_value": 70000})),
            Err("port_value: value must be less than or equal to 65535".into())
        );
        assert_eq!(
            check("envoy.config.core.v3.SocketAddress", json!({"address": "1.2.3.4", "port_value": 65535})),
            Ok(())
        );
    }

    #[test]
    fn tcp_proxy_without_stat_prefix_fails() {
        assert_eq!(
            check(TCP_PROXY, json!({"cluster": "c"})),
            Err("stat_prefix: value length must be at least 1 runes".into())
        );
        assert_eq!(check(TCP_PROXY, json!({"stat_prefix": "s", "cluster": "c"})), Ok(()));
    }

    #[test]
    fn required_oneof_unset_fails() {
        assert_eq!(
            check(TCP_PROXY, json!({"stat_prefix": "s"})),
            Err("exactly one of 'cluster', 'weighted_clusters' must be set".into())
        );
    }

    #[test]
    fn any_payload_is_validated_at_its_path() {
        let bad = listener(json!({"stat_prefix": "", "cluster": "c"}));
        assert_eq!(
            check("envoy.config.listener.v3.Listener", bad),
            Err("filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1 runes".into())
        );
        let good = listener(json!({"stat_prefix": "tcp", "cluster": "c"}));
        assert_eq!(check("envoy.config.listener.v3.Listener", good), Ok(()));
    }

    #[test]
    fn bootstrap_errors_carry_the_full_path() {
        let bootstrap = json!({"static_resources": {"clusters": [
            {"name": "a", "connect_timeout": "1s"},
            {"name": "b", "connect_timeout": "1s", "load_assignment": {"cluster_name": "b", "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": socket_address(70000)}}]},
            ]}},
        ]}});
        assert_eq!(
            check("envoy.config.bootstrap.v3.Bootstrap", bootstrap),
            Err("static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address\
                 .socket_address.port_value: value must be less than or equal to 65535"
                .into())
        );
    }

    #[test]
    fn every_violation_is_reported() {
        let bootstrap = json!({"static_resources": {"clusters": [
            {"name": "", "connect_timeout": "0s"},
            {"name": "b", "load_assignment": {"cluster_name": "b", "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": socket_address(70000)}}]},
            ]}},
        ]}});
        let e = check("envoy.config.bootstrap.v3.Bootstrap", bootstrap).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert_eq!(lines[0], "static_resources.clusters[0].name: value length must be at least 1 runes");
        assert_eq!(lines[1], "  and 2 more:");
        assert_eq!(lines[2], "  static_resources.clusters[0].connect_timeout: value must be greater than 0s");
        assert!(lines[3].starts_with("  static_resources.clusters[1].load_assignment.endpoints[0]"), "{e}");
    }

    #[test]
    fn wrapper_rules_apply_to_the_wrapped_value() {
        let outlier = "envoy.config.cluster.v3.OutlierDetection";
        assert_eq!(
            check(outlier, json!({"max_ejection_percent": 101})),
            Err("max_ejection_percent: value must be less than or equal to 100".into())
        );
        assert_eq!(check(outlier, json!({"max_ejection_percent": 100})), Ok(()));
        assert_eq!(check(outlier, json!({})), Ok(()));
    }

    #[test]
    fn repeated_min_items_is_checked_when_empty() {
        assert_eq!(
            check("envoy.config.core.v3.DnsResolutionConfig", json!({})),
            Err("resolvers: value must contain at least 1 item(s)".into())
        );
        assert_eq!(
            check("envoy.config.core.v3.DnsResolutionConfig", json!({"resolvers": [socket_address(70000)]})),
            Err("resolvers[0].socket_address.port_value: value must be less than or equal to 65535".into())
        );
    }

    #[test]
    fn enum_defined_only() {
        assert_eq!(
            check(CLUSTER, json!({"name": "c", "type": 42})),
            Err("type: value must be one of the defined enum values".into())
        );
    }

    #[test]
    fn header_rules() {
        // Strict (the default): an RFC 7230 token; `ignore_empty` lets "" through.
        let protocol = "envoy.config.core.v3.UpstreamHttpProtocolOptions";
        assert_eq!(check(protocol, json!({"override_auto_sni_header": "x-sni"})), Ok(()));
        assert_eq!(check(protocol, json!({"override_auto_sni_header": ""})), Ok(()));
        let err = check(protocol, json!({"override_auto_sni_header": "bad name"})).unwrap_err();
        assert!(err.starts_with("override_auto_sni_header: value does not match regex pattern"), "{err}");
        // `strict: false` (HeaderValue): only NUL, CR and LF are refused.
        let header = "envoy.config.core.v3.HeaderValue";
        assert_eq!(check(header, json!({"key": "odd name", "value": "v\tw"})), Ok(()));
        let err = check(header, json!({"key": "x", "value": "a\nb"})).unwrap_err();
        assert!(err.starts_with("value: value does not match regex pattern"), "{err}");
        let name = KnownRegex::HttpHeaderName as i32;
        let value = KnownRegex::HttpHeaderValue as i32;
        assert!(check_known_regex(":authority", name, true).is_none());
        assert!(check_known_regex(":", name, true).is_some());
        assert!(check_known_regex("", name, true).is_some());
        assert!(check_known_regex("v\tw", value, true).is_none());
        assert!(check_known_regex("v\x01", value, true).is_some());
        assert!(check_known_regex("a\rb", value, false).is_some());
    }

    #[test]
    fn ranges_follow_pgv_wording() {
        let b = |lt, lte, gt, gte| Bounds {
            konst: None,
            lt,
            lte,
            gt,
            gte,
            within: vec![],
            not_in: vec![],
            ignore_empty: false,
        };
        assert_eq!(b(Some(10), None, Some(0), None).check(10).as_deref(), Some("value must be inside range (0, 10)"));
        assert_eq!(b(None, Some(10), None, Some(1)).check(0).as_deref(), Some("value must be inside range [1, 10]"));
        assert_eq!(b(Some(0), None, Some(10), None).check(5).as_deref(), Some("value must be outside range [0, 10]"));
        assert_eq!(b(None, None, None, Some(1)).check(0).as_deref(), Some("value must be greater than or equal to 1"));
        let in_list = Bounds { within: vec![1, 2], not_in: vec![3], ..b(None, None, None, None) };
        assert_eq!(in_list.check(4).as_deref(), Some("value must be in list [1 2]"));
        assert_eq!(in_list.check(2), None);
        let ignore = Bounds { ignore_empty: true, ..b(None, None, Some(5), None) };
        assert_eq!(ignore.check(0), None);
        assert!(ignore.check(1).is_some());
    }

    #[test]
    fn string_lengths_and_well_known() {
        let r = StringRules { min_len: Some(2), max_len: Some(3), ..Default::default() };
        assert_eq!(check_string("ab", &r), None);
        assert_eq!(check_string("éé", &r), None, "runes, not bytes");
        assert_eq!(check_string("a", &r).as_deref(), Some("value length must be between 2 and 3 runes, inclusive"));
        let r = StringRules { min_bytes: Some(3), ..Default::default() };
        assert_eq!(check_string("é", &r).as_deref(), Some("value length must be at least 3 bytes"));
        let r = StringRules { prefix: Some("/".into()), ..Default::default() };
        assert_eq!(check_string("x", &r).as_deref(), Some("value does not have prefix \"/\""));
        let r = StringRules { well_known: Some(WellKnown::Address(true)), ..Default::default() };
        assert_eq!(check_string("example.com", &r), None);
        assert_eq!(check_string("::1", &r), None);
        assert!(check_string("-bad-", &r).is_some());
        let r = StringRules { min_len: Some(1), ignore_empty: Some(true), ..Default::default() };
        assert_eq!(check_string("", &r), None);
    }

    #[test]
    fn durations_display_like_proto_json() {
        assert_eq!(Nanos::new(0, 0).to_string(), "0s");
        assert_eq!(Nanos::new(1, 500_000_000).to_string(), "1.5s");
        assert_eq!(Nanos::new(0, 1_000_000).to_string(), "0.001s");
        assert_eq!(Nanos::new(-1, -500_000_000).to_string(), "-1.5s");
    }
}
