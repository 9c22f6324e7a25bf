//! Prints the bandwidth-per-codec table (Markdown) under the default
//! configuration: `cargo run -p admission --example codec_table`.

fn main() {
    print!("{}", admission::Estimator::default().codec_table_markdown());
}
