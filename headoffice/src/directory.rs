//! The branch directory: which branches the bank has, their names, regions, addresses and
//! contacts. A CSV file (what a bank's branch list exported from a spreadsheet is), UTF-8,
//! with a header row naming at least `id`; `name`, `region`, `address` and `contacts` are
//! read when present, other columns are ignored.
//!
//! ```text
//! id,name,region,address,contacts
//! bj-0001,北京分行营业部,华北,北京市西城区复兴门内大街 1 号,张三 010-12345678
//! ```
//!
//! A branch that publishes but is not in the directory is still shown, under its id; a branch
//! in the directory that never published is shown as "no data", which is itself worth knowing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocols::BranchId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    pub id: BranchId,
    pub name: String,
    pub region: String,
    pub address: String,
    pub contacts: String,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    branches: BTreeMap<BranchId, BranchInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("branch directory {path}: cannot read it: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("branch directory {path}: line {line}: {detail}")]
    Bad { path: PathBuf, line: u64, detail: String },
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let bytes = std::fs::read(path).map_err(|error| DirectoryError::Read { path: path.to_path_buf(), error })?;
        Directory::parse(&bytes).map_err(|(line, detail)| DirectoryError::Bad {
            path: path.to_path_buf(),
            line,
            detail,
        })
    }

    /// Parses the CSV text; errors are (line, what is wrong and how to fix it).
    pub fn parse(bytes: &[u8]) -> Result<Directory, (u64, String)> {
        // Spreadsheets save UTF-8 CSV with a byte-order mark.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut r = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(bytes);
        let headers = r.headers().map_err(|e| (1, format!("the header row cannot be read: {e}")))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let Some(id_col) = col("id") else {
            return Err((1, "the header row has no `id` column (expected: id,name,region,address,contacts)".into()));
        };
        let (name_col, region_col, address_col, contacts_col) =
            (col("name"), col("region"), col("address"), col("contacts"));
        let mut branches = BTreeMap::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| (e.position().map_or(0, |p| p.line()), format!("not CSV: {e}")))?;
            let line = rec.position().map_or(0, |p| p.line());
            let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or_default().to_string();
            let raw = get(Some(id_col));
            if raw.is_empty() && rec.iter().all(str::is_empty) {
                continue;
            }
            let id = BranchId::new(raw.clone()).map_err(|e| (line, format!("branch id {raw:?} {e}")))?;
            if branches.contains_key(&id) {
                return Err((line, format!("branch {id} is listed twice")));
            }
            let info = BranchInfo {
                id: id.clone(),
                name: get(name_col),
                region: get(region_col),
                address: get(address_col),
                contacts: get(contacts_col),
            };
            branches.insert(id, info);
        }
        Ok(Directory { branches })
    }

    pub fn get(&self, id: &BranchId) -> Option<&BranchInfo> {
        self.branches.get(id)
    }

    pub fn branches(&self) -> impl Iterator<Item = &BranchInfo> {
        self.branches.values()
    }

    pub fn len(&self) -> usize {
        self.branches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// The regions named in the directory, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.branches.values().map(|b| b.region.clone()).filter(|r| !r.is_empty()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The branches of a region.
    pub fn in_region(&self, region: &str) -> Vec<BranchId> {
        self.branches.values().filter(|b| b.region == region).map(|b| b.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_spreadsheet_export_with_bom_and_extra_columns() {
        let text = "\u{feff}ID,Name,Region,Phone,Address,Contacts\n\
                    bj-1,北京营业部,华北,1,\"复兴门内大街 1 号, 西城\",张三\n\
                    \n\
                    sh-1,上海营业部,华东,2,,\n";
        let d = Directory::parse(text.as_bytes()).unwrap();
        assert_eq!(d.len(), 2);
        let b = d.get(&BranchId::new("bj-1").unwrap()).unwrap();
        assert_eq!((b.name.as_str(), b.region.as_str()), ("北京营业部", "华北"));
        assert_eq!(b.address, "复兴门内大街 1 号, 西城");
        assert_eq!(d.regions(), vec!["华东".to_string(), "华北".to_string()]);
        assert_eq!(d.in_region("华东"), vec![BranchId::new("sh-1").unwrap()]);
    }

    #[test]
    fn mistakes_name_the_line_and_the_fix() {
        let (line, e) = Directory::parse(b"name,region\nx,y\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(e.contains("no `id` column"), "{e}");
        let (line, e) = Directory::parse(b"id,name\nb1,x\nb 2,y\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(e.contains("whitespace"), "{e}");
        let (line, e) = Directory::parse(b"id\nb1\nb1\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(e.contains("twice"), "{e}");
    }
}
