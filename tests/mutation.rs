//! Unknown keys are errors: for every node of every example, a copy of the
//! examples with one bogus property added to that node must fail with a
//! diagnostic naming the property and pointing at it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use kdl::{KdlDocument, KdlEntry, KdlNode};

const BOGUS: &str = "bogus-key";

/// Paths (child indices from the top) of every node in a document.
fn node_paths(nodes: &[KdlNode], prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, n) in nodes.iter().enumerate() {
        prefix.push(i);
        out.push(prefix.clone());
        if let Some(children) = n.children() {
            node_paths(children.nodes(), prefix, out);
        }
        prefix.pop();
    }
}

fn node_at<'a>(doc: &'a mut KdlDocument, path: &[usize]) -> &'a mut KdlNode {
    let mut node = &mut doc.nodes_mut()[path[0]];
    for &i in &path[1..] {
        node = &mut node
            .children_mut()
            .as_mut()
            .expect("path follows children")
            .nodes_mut()[i];
    }
    node
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else if p.extension().is_some_and(|x| x == "kdl") {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn kdl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            kdl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "kdl") {
            out.push(p);
        }
    }
}

#[test]
fn a_bogus_property_on_any_node_of_any_example_is_reported() {
    let examples = root().join("examples");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("examples");
    copy_tree(&examples, &copy);

    let mut files = Vec::new();
    kdl_files(&copy, &mut files);
    files.sort();
    let entries: Vec<PathBuf> = example_configs()
        .iter()
        .map(|p| copy.join(p.strip_prefix(&examples).unwrap()))
        .collect();

    let mut mutated = 0;
    for file in &files {
        let original = std::fs::read_to_string(file).unwrap();
        let doc: KdlDocument = KdlDocument::parse_v2(&original).unwrap();
        let mut paths = Vec::new();
        node_paths(doc.nodes(), &mut Vec::new(), &mut paths);
        for path in paths {
            let mut doc = doc.clone();
            let node = node_at(&mut doc, &path);
            let node_name = node.name().value().to_string();
            node.entries_mut().push(KdlEntry::new_prop(BOGUS, 1));
            let text = doc.to_string();
            std::fs::write(file, &text).unwrap();

            // The entry config that reads this file (itself, or gitops/main.kdl).
            let entry = if entries.contains(file) {
                file.clone()
            } else {
                entries
                    .iter()
                    .find(|e| e.ends_with("main.kdl") && file.starts_with(e.parent().unwrap()))
                    .cloned()
                    .unwrap_or_else(|| panic!("{} is not read by any example", file.display()))
            };
            let out = compile_path(&entry, true);
            let hit = out.diags.iter().find(|d| {
                d.code.as_str() == "mailc::property::unknown"
                    && d.message.contains(BOGUS)
                    && d.message.contains(&format!("`{node_name}`"))
            });
            let Some(hit) = hit else {
                panic!(
                    "adding {BOGUS}=1 to `{node_name}` (node {path:?}) in {} was not reported:\n{}",
                    file.display(),
                    render(&out)
                );
            };
            assert!(
                out.compiled.is_none(),
                "an unknown property must be an error"
            );
            let span = hit.labels[0].span;
            let src = &out.sources.get(span.file);
            assert_eq!(src.path, *file, "diagnostic points into the mutated file");
            assert_eq!(
                &src.text[span.offset..span.offset + span.len],
                format!("{BOGUS}=1")
            );
            mutated += 1;
        }
        std::fs::write(file, &original).unwrap();
    }
    assert!(mutated > 50, "only {mutated} nodes mutated");
}

#[test]
fn a_bogus_top_level_node_is_reported_with_a_suggestion() {
    let text = "hostname \"mail.example.test\"\nhostnme \"x\"\n";
    let out = mailc::compile::compile_str(
        "t.kdl",
        &root(),
        text,
        mailc::compile::Options { offline: true },
    );
    let d = out
        .diags
        .iter()
        .find(|d| d.code.as_str() == "mailc::node::unknown")
        .expect("unknown node reported");
    assert_eq!(d.help.as_deref(), Some("did you mean `hostname`?"));
}
