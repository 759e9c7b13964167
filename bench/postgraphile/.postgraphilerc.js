// PostGraphile v4 CLI configuration for the benchmark baseline. The CLI reads
// `.postgraphilerc.js` from its working directory, so bench/run.sh starts it here.
//
// postgraphile-plugin-connection-filter (appended on the command line) is only
// needed to express the storefront's visibility rule (status = 'ACTIVE' and
// published_at <= now()) on the related product of a collection_products row,
// which needs relation filters, off by default.
module.exports = {
  options: {
    graphileBuildOptions: {
      connectionFilterRelations: true,
    },
  },
};
