# A KDL v2 renderer that uses only Nix builtins (so it is testable without
# nixpkgs), for the JSON/Nix form of a mailc configuration
# (schema/config.schema.json):
#
#   scalar                      -> name "value"          (#true, #false, #null, 42)
#   list of scalars             -> name "a" "b"
#   attrset with _args, _props  -> name "a" key="v" { children }
#   other attrset               -> name { children }
#   list of attrsets            -> the node repeated
#
# Attribute names render sorted; where order matters, use lists.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    elem
    filter
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isNull
    isString
    map
    match
    replaceStrings
    stringLength
    toString
    ;

  isScalar = v: isString v || isInt v || isFloat v || isBool v || isNull v;

  # KDL v2 quoted string: escape backslash, quote and the control
  # characters that have escapes.
  quote =
    s:
    "\""
    + replaceStrings [ "\\" "\"" "\n" "\r" "\t" ] [ "\\\\" "\\\"" "\\n" "\\r" "\\t" ] s
    + "\"";

  keywords = [
    "true"
    "false"
    "null"
    "inf"
    "-inf"
    "nan"
  ];

  # Bare identifiers where KDL allows them, quoted strings otherwise.
  ident =
    s:
    if match "[A-Za-z_][A-Za-z0-9_.-]*" s != null && !(elem s keywords) then s else quote s;

  value =
    v:
    if isString v then
      quote v
    else if isBool v then
      (if v then "#true" else "#false")
    else if isNull v then
      "#null"
    else if isInt v || isFloat v then
      toString v
    else
      throw "kdl.nix: cannot render a ${builtins.typeOf v} as a KDL value";

  indent = depth: concatStringsSep "" (builtins.genList (_: "    ") depth);

  special = [
    "_args"
    "_props"
  ];

  # The lines of one node.
  node =
    depth: name: v:
    if isScalar v then
      [ "${indent depth}${ident name} ${value v}" ]
    else if isList v then
      (
        if v == [ ] then
          [ "${indent depth}${ident name}" ]
        else if builtins.all isScalar v then
          [ "${indent depth}${ident name} ${concatStringsSep " " (map value v)}" ]
        else if builtins.all isAttrs v then
          builtins.concatLists (map (node depth name) v)
        else
          throw "kdl.nix: ${name}: a list must hold only scalars or only attribute sets"
      )
    else if isAttrs v then
      let
        args = v._args or [ ];
        props = v._props or { };
        head = concatStringsSep " " (
          [ (ident name) ]
          ++ map value args
          ++ map (k: "${ident k}=${value props.${k}}") (attrNames props)
        );
        childNames = filter (k: !(elem k special)) (attrNames v);
        kids = builtins.concatLists (map (k: node (depth + 1) k v.${k}) childNames);
      in
      if kids == [ ] then
        [ "${indent depth}${head}" ]
      else
        [ "${indent depth}${head} {" ] ++ kids ++ [ "${indent depth}}" ]
    else
      throw "kdl.nix: ${name}: cannot render a ${builtins.typeOf v}";

  # A whole document from an attrset of top-level nodes.
  toKDL =
    doc:
    let
      lines = builtins.concatLists (map (k: node 0 k doc.${k}) (attrNames doc));
    in
    if lines == [ ] then "" else concatStringsSep "\n" lines + "\n";
in
{
  inherit toKDL quote ident;
}
