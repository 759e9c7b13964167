//! Relay connections with Shopify's names (`ProductConnection`, `ProductEdge`, ...).

/// Declares `$conn { edges, nodes, pageInfo }` and `$edge { cursor, node }` for `$node`.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("An auto-generated type for paginating through multiple ", $what, ".")]
        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $edge {
            /// A cursor for use in pagination.
            pub cursor: String,
            /// The item at the end of this edge.
            pub node: $node,
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
                let edges: Vec<$edge> = rows
                    .into_iter()
                    .map(|(cursor, node)| $edge {
                        cursor: cursor.encode(),
                        node,
                    })
                    .collect();
                let page_info = $crate::graphql::types::common::PageInfo {
                    has_next_page,
                    has_previous_page,
                    start_cursor: edges.iter().next().map(|e| e.cursor.clone()),
                    end_cursor: edges.iter().next_back().map(|e| e.cursor.clone()),
                };
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
