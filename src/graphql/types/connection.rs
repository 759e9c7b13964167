//! Relay connections with Shopify's names (`ProductConnection`, `ProductEdge`, ...).

/// Declares `$conn { edges, nodes, pageInfo }` and `$edge { cursor, node }` for `$node`.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("An auto-generated type for paginating through multiple ", $what, ".")]
        #[derive(Clone)]
        pub struct $edge {
            /// Encoded only when asked for: a grid that reads `nodes` encodes none.
            pub cursor: $crate::pagination::Cursor,
            pub node: $node,
        }

        #[doc = concat!("An auto-generated type for paginating through multiple ", $what, ".")]
        #[async_graphql::Object]
        impl $edge {
            /// A cursor for use in pagination.
            async fn cursor(&self) -> String {
                self.cursor.encode()
            }

            /// The item at the end of this edge.
            async fn node(&self) -> &$node {
                &self.node
            }
        }

        #[doc = concat!("An auto-generated type for paginating through multiple ", $what, ".")]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::types::common::PageInfo,
        }

        impl $conn {
            pub fn new(
                rows: Vec<($crate::pagination::Cursor, $node)>,
                has_next_page: bool,
                has_previous_page: bool,
            ) -> Self {
                let page_info = $crate::graphql::types::common::PageInfo {
                    has_next_page,
                    has_previous_page,
                    start_cursor: <[_]>::first(&rows).map(|(c, _)| c.clone()),
                    end_cursor: <[_]>::last(&rows).map(|(c, _)| c.clone()),
                };
                let edges: Vec<$edge> = rows
                    .into_iter()
                    .map(|(cursor, node)| $edge { cursor, node })
                    .collect();
                Self { edges, page_info }
            }
        }

        #[async_graphql::Object]
        impl $conn {
            /// A list of edges.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            /// A list of the nodes contained in the edges.
            async fn nodes(&self) -> Vec<$node> {
                self.edges.iter().map(|e| e.node.clone()).collect()
            }

            /// Information to aid in pagination.
            async fn page_info(&self) -> &$crate::graphql::types::common::PageInfo {
                &self.page_info
            }
        }
    };
}

pub(crate) use connection;
