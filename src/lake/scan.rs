//! How the lake's Parquet files are read: DataFusion's Parquet format, with
//! the low-cardinality string columns that queries filter and group on most
//! (the events' `event`) read as dictionary arrays. Owns no file listing or
//! pruning; the table declares the dictionary type, this makes files match it.

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::Session;
use datafusion::common::{internal_datafusion_err, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSinkConfig, FileSource, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::physical_expr::LexRequirement;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{encode_arrow_schema, parquet_to_arrow_schema, ARROW_SCHEMA_META_KEY};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder};

/// The type a dictionary column is read as.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Parquet, with `dictionary` columns read as [`dictionary_type`].
///
/// Read as strings, every row of `event` becomes a 16-byte view and a filter
/// such as `event IN ('signup', ...)` hashes a string per row. Read as a
/// dictionary (Parquet stores the column dictionary-encoded already), a row is
/// a 4-byte key and a filter is worked out once per distinct value. The reader
/// takes the type from the file's Arrow schema hint, so each footer's hint is
/// rewritten on the way in; files written by other tools are read the same way.
#[derive(Debug)]
pub struct LakeFormat {
    inner: ParquetFormat,
    dictionary: Arc<[String]>,
}

impl LakeFormat {
    pub fn new(inner: ParquetFormat, dictionary: &[&str]) -> Self {
        LakeFormat { inner, dictionary: dictionary.iter().map(|c| c.to_string()).collect() }
    }
}

#[async_trait]
impl FileFormat for LakeFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(&self, state: &dyn Session, store: &Arc<dyn ObjectStore>, objects: &[ObjectMeta]) -> Result<SchemaRef> {
        self.inner.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.inner.infer_stats(state, store, table_schema, object).await
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<datafusion::physical_expr::LexOrdering>> {
        self.inner.infer_ordering(state, store, table_schema, object).await
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<datafusion::datasource::file_format::FileMeta> {
        self.inner.infer_stats_and_ordering(state, store, table_schema, object).await
    }

    /// ParquetFormat's plan, with a reader factory that adds the dictionary hint
    /// (and still goes through DataFusion's footer cache).
    async fn create_physical_plan(&self, state: &dyn Session, conf: FileScanConfig) -> Result<Arc<dyn ExecutionPlan>> {
        let mut source = conf
            .file_source()
            .downcast_ref::<ParquetSource>()
            .cloned()
            .ok_or_else(|| internal_datafusion_err!("the lake format expects a Parquet source"))?;
        source = source.with_table_parquet_options(self.inner.options().clone());
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let store = state.runtime_env().object_store(conf.object_store_url.clone())?;
        let factory = DictionaryReaderFactory {
            inner: CachedParquetFileReaderFactory::new(store, cache),
            dictionary: self.dictionary.clone(),
        };
        source = source.with_parquet_file_reader_factory(Arc::new(factory));
        if let Some(hint) = self.inner.metadata_size_hint() {
            source = source.with_metadata_size_hint(hint);
        }
        let conf = FileScanConfigBuilder::from(conf).with_source(Arc::new(source)).build();
        Ok(DataSourceExec::from_data_source(conf))
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_writer_physical_plan(input, state, conf, order).await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

#[derive(Debug)]
struct DictionaryReaderFactory {
    inner: CachedParquetFileReaderFactory,
    dictionary: Arc<[String]>,
}

impl ParquetFileReaderFactory for DictionaryReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(DictionaryReader { inner, dictionary: self.dictionary.clone() }))
    }
}

struct DictionaryReader {
    inner: Box<dyn AsyncFileReader + Send>,
    dictionary: Arc<[String]>,
}

impl AsyncFileReader for DictionaryReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            with_dictionary_hint(metadata, &self.dictionary)
        }
        .boxed()
    }
}

/// The same metadata, its Arrow schema hint changed so that the named string
/// columns are read as dictionaries; unchanged when there is nothing to change.
pub fn with_dictionary_hint(metadata: Arc<ParquetMetaData>, columns: &[String]) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let stringy = matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
            if stringy && columns.iter().any(|c| c == f.name()) {
                changed = true;
                f.as_ref().clone().with_data_type(dictionary_type())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    if !changed {
        return Ok(metadata);
    }
    let hinted = Schema::new_with_metadata(fields, schema.metadata().clone());
    let mut kv: Vec<KeyValue> =
        file.key_value_metadata().map(|kv| kv.iter().filter(|k| k.key != ARROW_SCHEMA_META_KEY).cloned().collect()).unwrap_or_default();
    kv.push(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(&hinted)));
    let file_metadata = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(kv),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let rebuilt = ParquetMetaDataBuilder::new(file_metadata)
        .set_row_groups(metadata.row_groups().to_vec())
        .set_column_index(metadata.column_index().cloned())
        .set_offset_index(metadata.offset_index().cloned())
        .build();
    Ok(Arc::new(rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray};
    use arrow::datatypes::Int32Type;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::arrow_writer::ArrowWriterOptions;
    use parquet::arrow::ArrowWriter;

    /// A file with `event` and `user` as the given string arrays, read back with the hint for `event`.
    fn round_trip(event: ArrayRef, user: ArrayRef, skip_arrow_metadata: bool) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", event.data_type().clone(), true),
            Field::new("user", user.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![event, user]).unwrap();
        let mut buf = Vec::new();
        let options = ArrowWriterOptions::new().with_skip_arrow_metadata(skip_arrow_metadata);
        let mut w = ArrowWriter::try_new_with_options(&mut buf, schema, options).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(buf);
        let plain = ArrowReaderMetadata::load(&bytes, Default::default()).unwrap();
        let hinted = with_dictionary_hint(plain.metadata().clone(), &["event".to_string()]).unwrap();
        let meta = ArrowReaderMetadata::try_new(hinted, Default::default()).unwrap();
        let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta).build().unwrap();
        reader.next().unwrap().unwrap()
    }

    #[test]
    fn the_named_column_reads_as_a_dictionary_with_the_same_values() {
        let values = vec![Some("login"), Some("signup"), None, Some("login"), Some("page_view")];
        let users = vec![Some("a"), Some("b"), Some("c"), Some("a"), Some("b")];
        let cases: Vec<(ArrayRef, ArrayRef, bool)> = vec![
            (Arc::new(StringArray::from(values.clone())), Arc::new(StringArray::from(users.clone())), false),
            (Arc::new(LargeStringArray::from(values.clone())), Arc::new(StringArray::from(users.clone())), false),
            // No Arrow schema in the file at all (as many writers do).
            (Arc::new(StringArray::from(values.clone())), Arc::new(StringArray::from(users.clone())), true),
        ];
        for (event, user, skip) in cases {
            let kind = format!("{} skip={skip}", event.data_type());
            let got = round_trip(event, user, skip);
            let col = got.column(0);
            assert_eq!(col.data_type(), &dictionary_type(), "{kind}");
            let dict = col.as_dictionary::<Int32Type>();
            let strings = dict.values().as_string::<i32>();
            let read: Vec<Option<&str>> =
                (0..dict.len()).map(|i| dict.key(i).map(|k| strings.value(k))).collect();
            assert_eq!(read, values, "{kind}");
            // Columns not named keep their type.
            assert_eq!(got.column(1).data_type(), &DataType::Utf8, "{kind}");
        }
    }

    #[test]
    fn metadata_without_a_named_string_column_is_returned_as_is() {
        let event: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let schema = Arc::new(Schema::new(vec![Field::new("event", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![event]).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta = ArrowReaderMetadata::load(&Bytes::from(buf), Default::default()).unwrap();
        let same = with_dictionary_hint(meta.metadata().clone(), &["other".to_string()]).unwrap();
        assert!(Arc::ptr_eq(&same, meta.metadata()));
    }
}
