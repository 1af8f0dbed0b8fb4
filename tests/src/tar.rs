//! A minimal ustar writer: enough for image layers and `docker import`
//! tarballs (regular files and directories, no links).

const BLOCK: usize = 512;

/// One entry of an archive: a regular file, or a directory when `data` is
/// `None`.
pub struct Entry<'a> {
    pub path: &'a str,
    pub data: Option<&'a [u8]>,
}

/// Writes a complete tar archive (with the two terminating zero blocks).
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let data = entry.data.unwrap_or(&[]);
        out.extend_from_slice(&header(entry.path, data.len(), entry.data.is_none()));
        out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
    out
}

fn header(path: &str, size: usize, is_dir: bool) -> [u8; BLOCK] {
    assert!(
        path.len() < 100,
        "tar path too long for this writer: {path}"
    );
    let mut h = [0u8; BLOCK];
    h[..path.len()].copy_from_slice(path.as_bytes());
    octal(&mut h[100..108], if is_dir { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size as u64);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = if is_dir { b'5' } else { b'0' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    // The checksum is computed with its own field filled with spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let field = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(field.as_bytes());
    h
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}\0");
    assert_eq!(text.len(), field.len(), "value {value} does not fit");
    field.copy_from_slice(text.as_bytes());
}
