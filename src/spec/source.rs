//! Source files of one configuration (the main file and everything it includes)
//! and the byte spans that point into them. Every diagnostic and every AST value
//! carries a [`Span`], so an error in `domains/b.kdl` points into that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(file: FileId, offset: usize, len: usize) -> Span {
        Span { file, offset, len }
    }

    pub fn from_miette(file: FileId, span: miette::SourceSpan) -> Span {
        Span::new(file, span.offset(), span.len())
    }

    pub fn to_miette(self) -> miette::SourceSpan {
        miette::SourceSpan::new(self.offset.into(), self.len)
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the loader opened it (absolute when the main path was).
    pub path: PathBuf,
    /// The name shown in diagnostics: relative to the main file's directory.
    pub name: String,
    pub text: Arc<String>,
}

/// Every file of one configuration, in load order. `FileId(0)` is the main file.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, path: PathBuf, name: String, text: String) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile {
            path,
            name,
            text: Arc::new(text),
        });
        id
    }

    /// The file with this id. An id from another `Sources` (a bug, but one
    /// that must not crash `mailc check`) gets an empty placeholder.
    pub fn get(&self, id: FileId) -> &SourceFile {
        static NONE: std::sync::LazyLock<SourceFile> = std::sync::LazyLock::new(|| SourceFile {
            path: PathBuf::new(),
            name: "(unknown file)".into(),
            text: Arc::new(String::new()),
        });
        self.files.get(id.0 as usize).unwrap_or(&NONE)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files().find(|(_, f)| f.path == path).map(|(id, _)| id)
    }

    /// Directory against which relative paths written in `id` resolve.
    pub fn dir(&self, id: FileId) -> &Path {
        self.get(id).path.parent().unwrap_or(Path::new("."))
    }

    /// 1-based line and column of a span's start, for one-line summaries.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let text = &self.get(span.file).text;
        let mut end = span.offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let upto = &text[..end];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// `file:line` of a span, as shown by `mailc explain`.
    pub fn location(&self, span: Span) -> String {
        let (line, _) = self.line_col(span);
        format!("{}:{}", self.get(span.file).name, line)
    }
}
